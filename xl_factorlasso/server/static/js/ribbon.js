// xl-factorlasso: the "Factor LASSO" ribbon tab (templates/manifest.xml).
// Each ExecuteFunction button (<FunctionName>) runs one @script of xl_factorlasso.ribbon on the
// server through xlwings.runPython; the script sends back the actions that write the FL_*
// outputs and one alert with the job's summary (or the problem found in the inputs).
// This file replaces xlwings-server's static/js/ribbon.js (loaded by base.html).
const FLASSO_RIBBON = {
  "flasso-refit": "refit",
  "flasso-refit-cv": "refit_cv",
  "flasso-optimise-portfolio": "optimise_portfolio",
  "flasso-backtest": "backtest",
  "flasso-clear-outputs": "clear_outputs",
};

function flassoRibbonHandler(scriptName) {
  return async function (event) {
    try {
      const authResult =
        typeof globalThis.getAuth === "function"
          ? await globalThis.getAuth()
          : { token: "", provider: "" };
      await xlwings.runPython({
        scriptName: scriptName,
        auth: authResult.token,
        headers: { "Auth-Provider": authResult.provider },
      });
    } finally {
      // Office requires completed() for every ExecuteFunction, also after an error
      event.completed();
    }
  };
}

for (const [action, scriptName] of Object.entries(FLASSO_RIBBON)) {
  Office.actions.associate(action, flassoRibbonHandler(scriptName));
}
