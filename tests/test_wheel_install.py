"""webnn as a wheel: the whole product installs from it and works outside the checkout.

The end-to-end test builds the wheel (``pip wheel --no-deps``), installs it with its dependencies
into a fresh venv (no system site packages), and from a folder outside the checkout runs ``wnn
serve --port 0 --local-workers 1`` with no SPEC: the bundled digits example, the bundled Node
worker (wasm backend: the bundled ``.wasm`` files) and a headless Chromium page (wasm backend: the
served bundle and ``.wasm`` files) all contribute merged updates. The other tests check
``--client-dir`` / ``client_dir`` and the no-SPEC default in process.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support.e2e import CHROMIUM, OutputPump, launch_chromium, wait_until
from support.processes import stop_process

from webnn import bundled
from webnn.server.commands import plan_models, with_default_example
from webnn.server.toml_config import load_toml

ROOT = Path(__file__).resolve().parent.parent
MAX_WHEEL_BYTES = 30 * 1024 * 1024
WHEEL_MUST_HOLD = (
    "webnn/_client/package.json",
    "webnn/_client/src/index.html",
    "webnn/_client/src/dashboard.html",
    "webnn/_client/src/page.js",
    "webnn/_client/src/style.css",
    "webnn/_client/bin/wnn-worker.js",
    "webnn/_client/node_modules/@tensorflow/tfjs/dist/tf.min.js",
    "webnn/_client/node_modules/@tensorflow/tfjs/dist/tf.node.js",
    "webnn/_client/node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js",
    "webnn/_client/node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm",
    "webnn/_client/node_modules/chart.js/dist/chart.umd.js",
    "webnn/_examples/model_specs/digits_mlp.json",
    "webnn/_examples/data_modules/digits.py",
    "webnn/__main__.py",
    "webnn/spec/schema.json",
)


def clean_env() -> dict[str, str]:
    """The environment without anything pointing Python at the checkout's venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(argv: list[str], cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        cwd=out)
    (built,) = out.glob("webnn-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site packages) with the wheel and its dependencies installed."""
    home = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", str(home / "venv")], cwd=home)
    python = home / "venv" / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], cwd=home)
    return home / "venv"


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_the_wheel_holds_the_product_and_stays_small(wheel: Path) -> None:
    size = wheel.stat().st_size
    assert size < MAX_WHEEL_BYTES, f"{wheel.name} is {size} bytes"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = [name for name in WHEEL_MUST_HOLD if name not in names]
    assert not missing, f"{wheel.name} lacks {missing}"
    unneeded = sorted(n for n in names if n.endswith((".map", ".d.ts"))
                      or "/dist/miniprogram/" in n or ".es2017." in n or ".fesm." in n)
    assert not unneeded, unneeded


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_installed_wheel_serves_the_example_to_node_and_chromium(venv: Path,
                                                                  tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH (make setup needs it too)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    version = run([str(venv / "bin" / "python"), "-m", "webnn", "--version"], cwd=elsewhere)
    assert version.startswith("wnn, version"), version
    examples = next((venv / "lib").glob("python3*/site-packages/webnn/_examples"))
    (elsewhere / "compare.toml").write_text(
        f'name = "wheel"\nmodel = "{examples}/model_specs/digits_mlp.json"\n'
        f'data = "{examples}/data_modules/digits.py"\nseeds = [1]\n[stop]\nseconds = 5\n'
        '[[strategies]]\nname = "average"\n[[clients]]\ncount = 1\n')
    checked = run([str(venv / "bin" / "wnn"), "compare", "--check", "compare.toml"], cwd=elsewhere)
    assert "OK" in checked, checked  # found the bundled worker and its TF.js

    process = subprocess.Popen(
        [str(venv / "bin" / "wnn"), "serve", "--port", "0", "--local-workers", "1",
         "--worker-backend", "wasm", "--verbose"],  # --verbose: the worker's per-task lines
        cwd=elsewhere, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = OutputPump(process.stdout)

    def banner() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"wnn serve exited ({process.returncode}):\n{output.text()}")
        found = re.search(r"volunteer page:\s+(\S+)", output.text())
        return found.group(1) if found else None

    try:
        url = wait_until(banner, 120, "wnn serve to print its URL")
        text = output.text()
        # The bundled example, from the installed package (not the checkout).
        site = re.search(r"spec: (\S+)", text).group(1)
        assert site.startswith(str(venv)), text
        assert site.endswith("webnn/_examples/model_specs/digits_mlp.json"), text
        assert "serving digits_mlp" in text

        import json
        import urllib.request

        def status() -> dict:
            with urllib.request.urlopen(url + "api/v1/status", timeout=30) as response:
                return json.loads(response.read())

        def clients() -> list[dict]:
            with urllib.request.urlopen(url + "api/v1/clients", timeout=30) as response:
                return json.loads(response.read())["clients"]

        wait_until(lambda: re.search(r"\[worker-1\] task \S+ train .* merged", output.text()),
                   180, f"the bundled Node worker's first merged update:\n{output.text()}")
        assert "backend wasm" in output.text()
        with playwright_api.sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(url + "?backend=wasm&name=wheel-page&autostart=1")
                page.wait_for_function(
                    "() => globalThis.webnnPage && globalThis.webnnPage.stats"
                    " && globalThis.webnnPage.stats.updates >= 1", timeout=180_000)
                assert page.evaluate("() => globalThis.webnnPage.backend") == "wasm"
                wait_until(lambda: [c for c in clients() if c.get("name") == "wheel-page"
                                    and c["updatesAccepted"] > 0], 120,
                           "the page's merged update")
                assert not errors, errors
                page.goto(url + "dashboard")  # the dashboard and chart.js load from the wheel
                page.wait_for_function("() => globalThis.Chart !== undefined", timeout=60_000)
            finally:
                browser.close()
        assert status()["version"] >= 2
    finally:
        stop_process(process)


def test_client_dir_serves_a_customised_page_with_the_bundled_libraries(tmp_path: Path) -> None:
    custom = tmp_path / "client"
    (custom / "src").mkdir(parents=True)
    (custom / "src" / "index.html").write_text("<p>my own page</p>")
    config = tmp_path / "serve.toml"
    config.write_text('client_dir = "client"\n')
    settings = load_toml(config)
    assert settings.process["client_dir"] == str(custom)
    (plan,) = plan_models(dict(settings.process), [{"spec": str(ROOT / "model_specs" /
                                                                "digits_mlp.json"),
                                                     "data": "data_modules/digits.py"}],
                          mounted=False)
    assert plan.config.client_dir == custom

    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from webnn.server.app import create_app

    plan.config.data = str(ROOT / "data_modules" / "digits.py")

    async def fetch() -> None:
        async with TestClient(TestServer(create_app(plan.config))) as client:
            page = await client.get("/")
            assert await page.text() == "<p>my own page</p>"
            library = await client.get("/static/tfjs/tf.min.js")  # from the bundled client
            assert library.status == 200
            assert len(await library.read()) > 100_000
            missing = await client.get("/static/client/page.js")  # the custom src/ has none
            assert missing.status == 404

    asyncio.run(fetch())


def test_a_folder_without_a_page_is_a_clear_client_dir_error(tmp_path: Path) -> None:
    wnn = Path(sys.executable).parent / "wnn"
    done = subprocess.run([str(wnn), "serve", "--client-dir", str(tmp_path), "--port", "0"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 1
    assert f"client_dir: no browser client at {tmp_path} (src/index.html is missing)" in (
        done.stderr), done.stderr


def test_no_spec_means_the_bundled_example(capsys: pytest.CaptureFixture[str]) -> None:
    example = bundled.default_example()
    assert example.spec.is_file() and example.data.is_file()
    (model,) = with_default_example([{"seed": 3}], multi=False)
    assert model == {"seed": 3, "spec": str(example.spec), "data": str(example.data)}
    assert "serving the bundled example digits_mlp" in capsys.readouterr().out
    given = [{"data": "mine.py"}]  # data without a spec stays a usage error in plan_models
    assert with_default_example(given, multi=False) is given


def test_local_workers_use_the_bundled_worker_unless_the_client_dir_has_one(tmp_path: Path) -> None:
    from webnn.node_worker import WORKER_SCRIPT, worker_dir

    assert worker_dir(None) == bundled.client_dir()
    assert worker_dir(tmp_path) == bundled.client_dir()  # a page-only client
    (tmp_path / WORKER_SCRIPT).parent.mkdir()
    (tmp_path / WORKER_SCRIPT).write_text("// a customised worker\n")
    assert worker_dir(tmp_path) == tmp_path


@pytest.mark.e2e
def test_the_client_packs_with_npm_for_sites_that_bundle_their_own_js(tmp_path: Path) -> None:
    """``npm pack`` in client_js gives a package of src/ and bin/ whose modules import by name."""
    if shutil.which("npm") is None:
        pytest.fail("npm is not on PATH (make setup needs it too)")
    packed = subprocess.run(["npm", "pack", "--json", "--pack-destination", str(tmp_path)],
                            cwd=ROOT / "client_js", capture_output=True, text=True, timeout=300,
                            check=True)
    import json
    import tarfile

    (info,) = json.loads(packed.stdout)
    files = {f["path"] for f in info["files"]}
    assert {"src/protocol.js", "src/trainer.js", "src/worker_loop.js", "src/index.html",
            "bin/wnn-worker.js", "package.json"} <= files
    assert not [f for f in files if f.startswith("test/")], files
    site = tmp_path / "site"
    (site / "node_modules").mkdir(parents=True)
    with tarfile.open(tmp_path / info["filename"]) as archive:
        archive.extractall(site / "node_modules", filter="data")
    (site / "node_modules" / "package").rename(site / "node_modules" / info["name"])
    (site / "package.json").write_text('{"type": "module"}\n')
    script = (f"import {{ WebnnClient }} from '{info['name']}/protocol.js';\n"
              f"import {{ Trainer }} from '{info['name']}/trainer.js';\n"
              f"import {{ WorkerLoop }} from '{info['name']}/worker_loop.js';\n"
              "console.log([WebnnClient, Trainer, WorkerLoop].map((c) => typeof c).join(' '));\n")
    (site / "main.js").write_text(script)
    done = subprocess.run(["node", "main.js"], cwd=site, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.stdout.strip() == "function function function", done.stdout + done.stderr
