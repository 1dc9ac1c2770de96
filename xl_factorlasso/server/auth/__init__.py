"""Auth providers of the project directory; xlwings-server imports ``auth.<provider>`` from here
first and falls back to its own (``entraid``)."""
