// xl-factorlasso Help task pane: the access-token form (custom auth provider only).
document.addEventListener("DOMContentLoaded", function () {
  const providers = (globalThis.config && globalThis.config.authProviders) || [];
  const section = document.getElementById("flasso-token");
  if (!section || !providers.includes("custom")) {
    return;
  }
  section.classList.remove("d-none");
  const input = document.getElementById("flasso-token-input");
  const status = document.getElementById("flasso-token-status");
  const show = function () {
    status.textContent = globalThis.flassoGetToken() ? "A token is saved." : "No token saved.";
  };
  document.getElementById("flasso-token-save").addEventListener("click", function () {
    globalThis.flassoSetToken(input.value);
    input.value = "";
    show();
  });
  document.getElementById("flasso-token-clear").addEventListener("click", function () {
    globalThis.flassoSetToken("");
    show();
  });
  show();
});
