"""The web dashboard in a real headless Chromium against a real `ksrv up` (issue 20).

From the page only: validate a broken InferenceService (the same field errors as `ksrv apply
--dry-run`), apply a good one, watch it turn Ready, predict from the "try it" panel, see the
request-rate chart move while httpx loads the gateway, draw an InferenceGraph, delete; chat
with a custom generative model over the OpenAI API from the same panel. A
second platform with `--auth` shows the page asking for a token and working with it.
Screenshots of each page go to test-artifacts/dashboard/ (git-ignored; KSRV_TEST_ARTIFACTS
moves it).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import browser
from tests.conftest import KSRV, TESTS_DIR
from tests.integration.platform.conftest import _assert_no_leftovers
from tests.models import iris_expected
from tests.platform_support import LocalKsrv, example

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing())),
]
SHOTS = browser.ARTIFACTS / "dashboard"
BROKEN = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: broken
spec:
  predictor:
    minReplicas: -1
    model:
      modelFormat:
        name: sklearn
      storgeUri: file:///nowhere
"""
IRIS = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: {storage}
      args: ["--example-flag"]  # not passed on locally: a LocalLimitations condition
"""
GRAPH = """\
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: pipeline
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
        - name: classify
          serviceName: iris
        - name: ensemble
          nodeName: both
    both:
      routerType: Ensemble
      steps:
        - name: first
          serviceName: iris
        - name: second
          serviceName: iris
"""


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    chromium = browser.chromium()
    try:
        yield chromium
    finally:
        chromium.quit()


@pytest.fixture(scope="module")
def ksrv_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKsrv]:
    platform = LocalKsrv(tmp_path_factory.mktemp("ksrv-dashboard")).start()
    try:
        yield platform
    finally:
        platform.stop()
        _assert_no_leftovers(platform)


def wait(driver: Any, condition: Any, timeout_s: float = 30, what: str = "") -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The page redraws a table when what it shows changed: an element found may go stale.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    waiting = WebDriverWait(driver, timeout_s, poll_frequency=0.1, ignored_exceptions=ignored)
    return waiting.until(condition, what)


def by_id(driver: Any, element_id: str) -> Any:
    return driver.find_element("id", element_id)


def type_into(driver: Any, element_id: str, text: str) -> None:
    """Replace a field's text as a user would see it (set + input event: no slow typing)."""
    driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('input'));",
        element_id,
        text,
    )


def text_of(driver: Any, css: str) -> str:
    """An element's text, read at once (a redrawn element would be stale between two calls)."""
    found: str = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';", css
    )
    return found


def shot(driver: Any, name: str) -> None:
    """A screenshot of the page as it is now, kept as a test artefact."""
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def chart(driver: Any, chart_id: str) -> dict[str, str]:
    """A chart's data attributes and caption, read at once (the page redraws it every poll)."""
    found: dict[str, str] = driver.execute_script(
        "const f = document.getElementById('chart-' + arguments[0]);"
        "return {max: f.dataset.max, points: f.dataset.points,"
        " caption: f.querySelector('figcaption').textContent};",
        chart_id,
    )
    return found


def test_dashboard_applies_serves_tries_and_charts_a_service(
    driver: Any, ksrv_platform: LocalKsrv, model_dirs: dict[str, Path]
) -> None:
    platform = ksrv_platform
    assert f"dashboard: {platform.api}/dashboard/" in platform.log()  # `ksrv up` says where
    driver.get(f"{platform.api}/dashboard/")
    wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-rendered"))
    assert "InferenceServices (0)" in by_id(driver, "resources").text
    unlabelled = driver.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')]"
        ".filter((e) => !e.labels.length).map((e) => e.id)"
    )
    assert unlabelled == []  # every control is named for a screen reader
    shot(driver, "01-empty")

    # The page's validation shows the API's field errors: those `ksrv apply --dry-run` prints.
    type_into(driver, "yaml", BROKEN)
    by_id(driver, "validate").click()
    result = wait(driver, lambda d: d.find_element("css selector", "#editor-result .causes"))
    shown = [line.text for line in result.find_elements("tag name", "li")]
    cli = subprocess.run(
        [*KSRV, "apply", "--dry-run", "-f", "-"], input=BROKEN, capture_output=True, text=True
    )
    printed = [line.strip() for line in cli.stderr.splitlines() if line.strip().startswith("*")]
    assert cli.returncode == 1 and printed and shown == printed
    assert 'InferenceService "broken" is invalid' in by_id(driver, "editor-result").text
    shot(driver, "02-validation-errors")

    type_into(driver, "yaml", IRIS.format(storage=model_dirs["sklearn"]))
    by_id(driver, "apply").click()
    wait(driver, lambda d: "#/InferenceService/default/iris" in d.current_url)
    wait(driver, lambda d: by_id(d, "ready-state").text == "Ready", 90, "iris Ready on the page")
    wait(driver, lambda d: "iris-predictor-00001 100%" in by_id(d, "summary").text)
    wait(driver, lambda d: "model server listening" in by_id(d, "logs").text)
    limits = wait(driver, lambda d: text_of(d, "#summary .limits"))
    assert "Local limitations: model args are meant for the runtime" in limits
    row = text_of(driver, 'tr[data-key="InferenceService/default/iris"]')
    assert "Ready" in row and "sklearn" in row

    # Try it: the sample body comes from the model's V2 metadata (4 FP64 features).
    body = wait(driver, lambda d: json.loads(by_id(d, "try-body").get_attribute("value") or "0"))
    [row_values] = body["instances"]
    assert len(row_values) == 4
    by_id(driver, "try-send").click()
    wait(driver, lambda d: by_id(d, "try-status").get_attribute("data-code") == "200")
    answer = json.loads(by_id(driver, "try-answer").text)
    assert answer == {"predictions": iris_expected([row_values])[0]}
    assert "ms at the gateway" in by_id(driver, "try-status").text
    driver.execute_script("document.getElementById('try').scrollIntoView()")
    shot(driver, "03-service-ready-try-it")

    # The V2 sample and answer too.
    driver.find_element("css selector", "#try-protocol option[value='v2']").click()
    wait(driver, lambda d: '"inputs"' in by_id(d, "try-body").get_attribute("value"))
    by_id(driver, "try-send").click()
    wait(driver, lambda d: '"outputs"' in by_id(d, "try-answer").text)

    # Load through the gateway: the request-rate chart's points rise above zero.
    before = chart(driver, "rps")
    url = f"{platform.gateway}/serving/default/iris/v1/models/iris:predict"
    with httpx.Client(timeout=10) as client:
        for _ in range(150):
            assert client.post(url, json={"instances": [row_values]}).status_code == 200
    # The control plane reads the gateway's counters every 2 s, and the page polls every 2 s;
    # a bound, not an expected time (a loaded machine stretches both).
    wait(
        driver,
        lambda d: float(chart(d, "rps")["max"]) > float(before["max"]) + 1,
        90,
        f"the request-rate chart to rise above {before}",
    )
    after = chart(driver, "rps")
    assert "requests/s" in after["caption"] and int(after["points"]) > 1
    assert float(chart(driver, "latency")["max"]) > 0  # a p50 latency was measured
    driver.execute_script("document.getElementById('charts').scrollIntoView()")
    shot(driver, "04-traffic-charts")

    # An InferenceGraph from the editor, drawn as its nodes and steps.
    type_into(driver, "yaml", GRAPH)
    by_id(driver, "apply").click()
    wait(driver, lambda d: "#/InferenceGraph/default/pipeline" in d.current_url)
    nodes = wait(driver, lambda d: d.find_elements("css selector", "#graph svg .node"))
    assert sorted(n.get_attribute("data-node") for n in nodes) == ["both", "root"]
    assert "ensemble → node both" in by_id(driver, "graph").text
    assert len(driver.find_elements("css selector", "#graph svg .edge")) == 1
    driver.execute_script("document.getElementById('detail').scrollIntoView()")
    shot(driver, "05-inference-graph")

    # The keyboard: Enter on a service's link opens it and moves the focus to its heading.
    from selenium.webdriver.common.keys import Keys

    def press_enter_on_iris(d: Any) -> bool:
        d.find_element("css selector", 'tr[data-key="InferenceService/default/iris"] a').send_keys(
            Keys.ENTER
        )
        return True

    wait(driver, press_enter_on_iris)
    wait(driver, lambda d: d.execute_script("return document.activeElement.id") == "detail-title")
    assert by_id(driver, "detail-title").text == "InferenceService default/iris"

    # Delete from the page, behind an inline confirmation.
    driver.get(f"{platform.api}/dashboard/#/InferenceGraph/default/pipeline")
    wait(driver, lambda d: by_id(d, "delete").text == "Delete pipeline")
    wait(driver, lambda d: d.find_elements("css selector", "#graph svg .node"))  # drawn again
    by_id(driver, "delete").click()
    wait(driver, lambda d: by_id(d, "delete-yes").is_displayed())
    by_id(driver, "delete-yes").click()
    wait(driver, lambda d: not d.find_elements("css selector", 'tr[data-key$="/pipeline"]'))
    assert text_of(driver, 'tr[data-key="InferenceService/default/iris"]')  # only the graph went
    shot(driver, "06-overview")


def test_try_it_speaks_openai_to_a_generative_model(driver: Any, ksrv_platform: LocalKsrv) -> None:
    """A custom generative model (tests/openai_models.py) answers the panel's chat request."""
    chat = f"""\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: chat
spec:
  predictor:
    containers:
      - name: kserve-container
        image: ksrv-openai-test
        command: ["ksrv", "serve", "{TESTS_DIR / "openai_models.py"}:Templated"]
        args: ["--model-name", "chat"]
"""
    ksrv_platform.apply(chat, "--wait", "--timeout", "90s")
    driver.get(f"{ksrv_platform.api}/dashboard/#/InferenceService/default/chat")
    wait(driver, lambda d: by_id(d, "detail-title").text == "InferenceService default/chat")
    wait(driver, lambda d: by_id(d, "ready-state").text == "Ready")
    # The panel shows once the details (logs included) are drawn, after the Ready state.
    wait(driver, lambda d: by_id(d, "try").is_displayed(), what="the try-it panel")
    driver.find_element("css selector", "#try-protocol option[value='openai']").click()
    wait(driver, lambda d: '"messages"' in by_id(d, "try-body").get_attribute("value"))
    assert by_id(driver, "try-path").get_attribute("value") == "openai/v1/chat/completions"
    by_id(driver, "try-send").click()
    wait(driver, lambda d: by_id(d, "try-status").get_attribute("data-code") == "200")
    answer = json.loads(by_id(driver, "try-answer").text)
    assert answer["object"] == "chat.completion" and answer["model"] == "chat"
    assert answer["choices"][0]["message"]["content"].startswith(" a1 a2")
    driver.execute_script("document.getElementById('try').scrollIntoView()")
    shot(driver, "08-try-it-openai")


def test_a_trained_model_is_listed_and_tried_through_its_inference_service(
    driver: Any, ksrv_platform: LocalKsrv, model_dirs: dict[str, Path]
) -> None:
    """KServe's multi-model example: the TrainedModel's row names its InferenceService, and
    "try it" calls that service with the TrainedModel's name."""
    [isvc] = example("kserve__docs__samples__multimodelserving__sklearn__inferenceservice.yaml")
    model = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "TrainedModel",
        "metadata": {"name": "tm-iris"},
        "spec": {
            "inferenceService": isvc["metadata"]["name"],
            "model": {"storageUri": str(model_dirs["sklearn"]), "framework": "sklearn",
                      "memory": "1Mi"},
        },
    }  # fmt: skip
    ksrv_platform.apply([isvc], "--wait", "--timeout", "90s")
    ksrv_platform.apply([model])
    driver.get(f"{ksrv_platform.api}/dashboard/#/TrainedModel/default/tm-iris")
    wait(driver, lambda d: by_id(d, "detail-title").text == "TrainedModel default/tm-iris")
    wait(driver, lambda d: by_id(d, "ready-state").text == "Ready", 60, "tm-iris Ready")
    row = wait(driver, lambda d: text_of(d, 'tr[data-key="TrainedModel/default/tm-iris"]'))
    assert isvc["metadata"]["name"] in row and "sklearn" in row
    path = wait(driver, lambda d: by_id(d, "try-path").get_attribute("value"))
    assert path == "v1/models/tm-iris:predict"
    wait(driver, lambda d: "instances" in by_id(d, "try-body").get_attribute("value"))
    by_id(driver, "try-send").click()
    wait(driver, lambda d: by_id(d, "try-status").get_attribute("data-code") == "200")
    body = json.loads(by_id(driver, "try-body").get_attribute("value"))
    answer = json.loads(by_id(driver, "try-answer").text)
    assert answer == {"predictions": iris_expected(body["instances"])[0]}
    assert "Served by the replicas of sklearn-iris-example" in by_id(driver, "logs").text
    driver.execute_script("document.getElementById('try').scrollIntoView()")
    shot(driver, "09-trained-model")


def test_dashboard_behind_auth_asks_for_a_token_and_uses_it(driver: Any, tmp_path: Path) -> None:
    platform = LocalKsrv(tmp_path, args=("--auth",)).start()
    try:
        driver.get(f"{platform.api}/dashboard/")
        wait(driver, lambda d: "token" in by_id(d, "notice").text.lower())
        assert "401" in by_id(driver, "notice").text
        # The series and proxy endpoints are checked as the API's own.
        assert platform.http.get(f"{platform.api}/ksrv/v1/series").status_code == 401
        admin = (tmp_path / "admin.token").read_text().strip()
        type_into(driver, "token", admin)
        driver.find_element("css selector", "#token-form button").click()
        wait(driver, lambda d: "InferenceServices (0)" in by_id(d, "resources").text)
        type_into(driver, "yaml", BROKEN)
        by_id(driver, "validate").click()
        wait(driver, lambda d: d.find_elements("css selector", "#editor-result .causes li"))
        stored = driver.execute_script("return sessionStorage.getItem('ksrv.token')")
        assert stored == admin
        shot(driver, "07-auth")
        # A token for one namespace: refused for all of them, served for its own.
        made = platform.http.post(
            f"{platform.api}/ksrv/v1/tokens",
            json={"name": "team", "role": "admin", "namespace": "team"},
            headers={"authorization": f"Bearer {admin}"},
        )
        type_into(driver, "token", made.json()["token"])
        driver.find_element("css selector", "#token-form button").click()
        wait(driver, lambda d: "403" in by_id(d, "notice").text)
        type_into(driver, "namespace", "team")
        driver.execute_script(
            "document.getElementById('namespace').dispatchEvent(new Event('change'))"
        )
        wait(driver, lambda d: by_id(d, "notice").text == "")  # the failure is gone
        assert "InferenceServices (0)" in by_id(driver, "resources").text
    finally:
        driver.execute_script("sessionStorage.clear()")
        platform.stop()
        _assert_no_leftovers(platform)
