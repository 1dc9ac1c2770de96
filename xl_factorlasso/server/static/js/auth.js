// xl-factorlasso: what the add-in sends as Authorization / Auth-Provider headers.
// Replaces xlwings-server's static/js/auth.js (same Entra ID branch) and adds the "custom"
// provider of this project (auth/custom): a static access token, entered once in the Help task
// pane and kept in this add-in's local storage.
const FLASSO_TOKEN_KEY = "xl-factorlasso.access-token";

globalThis.flassoGetToken = function () {
  try {
    return localStorage.getItem(FLASSO_TOKEN_KEY) || "";
  } catch (e) {
    return "";
  }
};

globalThis.flassoSetToken = function (token) {
  if (token) {
    localStorage.setItem(FLASSO_TOKEN_KEY, token.trim());
  } else {
    localStorage.removeItem(FLASSO_TOKEN_KEY);
  }
};

globalThis.getAuth = async function () {
  const providers = (globalThis.config && globalThis.config.authProviders) || [];
  const token = globalThis.flassoGetToken();
  if (providers.includes("custom") && (token || !providers.includes("entraid"))) {
    return { token: token ? "Bearer " + token : "", provider: "custom" };
  }
  if (providers.includes("entraid")) {
    return { token: await xlwings.getAccessToken(), provider: "entraid" };
  }
  return { token: "", provider: "" };
};
