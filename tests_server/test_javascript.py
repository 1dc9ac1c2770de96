"""The add-in's own JavaScript run under Node with stubbed Office.js / xlwings globals.

Not Excel: this checks the wiring (each ribbon action -> ``xlwings.runPython`` with the right
script and auth headers, ``event.completed()`` always, also after an error; what ``getAuth``
sends for each auth-provider setting). Skipped when ``node`` is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from xl_factorlasso.server import PROJECT_DIR, RIBBON

JS = PROJECT_DIR / "static" / "js"

# One Node process runs every scenario: [providers, saved token] -> what the page would send.
HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
const [ribbonJs, authJs, scenarios] = process.argv.slice(1);  // node -e: no script path
async function run([providers, token]) {
  const calls = [], associated = {}, completed = [], store = {};
  const sandbox = {
    console,
    config: { authProviders: providers },
    localStorage: {
      getItem: (k) => (k in store ? store[k] : null),
      setItem: (k, v) => { store[k] = String(v); },
      removeItem: (k) => { delete store[k]; },
    },
    Office: { actions: { associate: (name, fn) => { associated[name] = fn; } } },
    xlwings: {
      runPython: async (opts) => {
        calls.push(opts);
        if (opts.scriptName === "refit_cv") throw new Error("boom");  // the error path
      },
      getAccessToken: async () => "Bearer entra-token",
    },
  };
  sandbox.globalThis = sandbox;
  vm.createContext(sandbox);
  vm.runInContext(fs.readFileSync(authJs, "utf8"), sandbox);
  vm.runInContext(fs.readFileSync(ribbonJs, "utf8"), sandbox);
  if (token) sandbox.flassoSetToken(token);
  const auth = await sandbox.getAuth();
  for (const name of Object.keys(associated)) {
    const event = { completed: () => completed.push(name) };
    try { await associated[name](event); } catch (e) { /* completed() must still run */ }
  }
  return { auth, associated: Object.keys(associated), calls, completed };
}
(async () => {
  const out = [];
  for (const scenario of JSON.parse(scenarios)) out.push(await run(scenario));
  console.log(JSON.stringify(out));
})();
"""

SCENARIOS = [
    ([], "", {"token": "", "provider": ""}),
    (["custom"], "", {"token": "", "provider": "custom"}),
    (["custom"], "s3cret", {"token": "Bearer s3cret", "provider": "custom"}),
    (["entraid"], "s3cret", {"token": "Bearer entra-token", "provider": "entraid"}),
    (["entraid", "custom"], "", {"token": "Bearer entra-token", "provider": "entraid"}),
    (["entraid", "custom"], "s3cret", {"token": "Bearer s3cret", "provider": "custom"}),
]


@pytest.fixture(scope="module")
def results() -> list[dict]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    scenarios = json.dumps([[providers, token] for providers, token, _ in SCENARIOS])
    r = subprocess.run([node, "-e", HARNESS, str(JS / "ribbon.js"), str(JS / "auth.js"),
                        scenarios], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_each_ribbon_action_runs_its_script_and_completes(results):
    out = results[0]
    buttons = [b for b in RIBBON if b.action]
    assert out["associated"] == [b.action for b in buttons]
    assert [c["scriptName"] for c in out["calls"]] == [b.script for b in buttons]
    assert out["completed"] == [b.action for b in buttons]  # also after refit_cv failed
    assert out["calls"][0]["auth"] == "" and out["calls"][0]["headers"] == {"Auth-Provider": ""}


@pytest.mark.parametrize("i", range(len(SCENARIOS)))
def test_get_auth_per_provider_setting(results, i):
    providers, token, auth = SCENARIOS[i]
    out = results[i]
    assert out["auth"] == auth, (providers, token)
    assert out["calls"][0]["auth"] == auth["token"]
    assert out["calls"][0]["headers"] == {"Auth-Provider": auth["provider"]}
