"""`airlock report`: the run as one HTML page, opened from disk in a real
browser (the system's headless Chromium, driven by Selenium through the
system's chromedriver, so nothing is downloaded; `make test` installs both)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from orchestrator.audit import audit_run
from orchestrator.launcher import RunResult
from orchestrator.report import REPORT_HTML, page, write_report
from orchestrator.report import answers as report_answers
from orchestrator.report import diagram as diagram_module
from orchestrator.report import figures as report_figures
from tests.helpers import airlock, failing, result_of, run_default, run_text

CHROMEDRIVER = "/usr/bin/chromedriver"
SCREEN = (1366, 768)  # a common laptop screen: the page must read well there
# retrieval by PIR, then each question with its guideline to the enclave:
# a small run (every party in this process) whose end user gets answers
RAG_THEN_ENCLAVE = """extends = "tee-inference"
name = "rag-then-enclave"

[parties.guidelines_a]
role = "external_database"
site = "database_a"
synthetic_documents = 200

[parties.guidelines_b]
role = "external_database"
site = "database_b"
synthetic_documents = 200

[parties.alice]
prompts = [
    "how should asthma be treated in children?",
    "what is the plan for gout in kidney disease?",
]

[[stages]]
name = "retrieval"
protocol = "pir"
params = { scheme = "xor", clusters = 8, top_k = 1, answer = false }

[[stages]]
name = "serve"
protocol = "tee"
params = { prompts = "retrieved", max_new_tokens = 6 }

[[guarantees]]
name = "databases see queries only as PIR queries"
asset = "query:*"
viewers = ["external_database"]
max_form = "share"
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium = shutil.which("chromium")
    assert chromium and Path(CHROMEDRIVER).exists(), (
        "apt-get install chromium chromium-driver (make test does)"
    )
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={SCREEN[0]},{SCREEN[1]}")
    options.binary_location = chromium
    # the console, and every request the page makes (performance log)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # an explicit driver: Selenium Manager is never asked for one (no network)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def rag_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    result = run_text(RAG_THEN_ENCLAVE, tmp_path_factory.mktemp("rag") / "run")
    assert result.failure is None and result.audit.ok, result.failure
    return result


def _requests(driver: webdriver.Chrome) -> list[str]:
    """URLs of every request the page made since the log was last read."""
    urls = []
    for record in driver.get_log("performance"):
        message = json.loads(record["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _open(driver: webdriver.Chrome, page: Path) -> None:
    driver.get_log("browser"), driver.get_log("performance")  # drop what came before
    driver.get(page.as_uri())
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    urls = _requests(driver)
    assert urls and all(url.startswith(("file:", "data:")) for url in urls), urls


def test_the_report_opens_from_disk_and_shows_the_run(
    default_run: Path, tmp_path: Path, browser: webdriver.Chrome
) -> None:
    assert (default_run / REPORT_HTML).exists()  # `airlock run` wrote one
    page = write_report(default_run, tmp_path / "report.html")
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html
    _open(browser, page)

    # the compact matrix (a column per kind of asset), then every asset's
    kind = browser.find_element(By.CSS_SELECTOR, 'td[data-party="deployer"][data-kind="prompt"]')
    assert kind.text == "ciphertext" and "capped" in (kind.get_attribute("class") or "")
    full = browser.find_element(By.ID, "matrix-full")
    assert full.get_attribute("open") is None  # no breach: folded
    full.find_element(By.TAG_NAME, "summary").click()
    cell = browser.find_element(
        By.CSS_SELECTOR, 'td[data-party="deployer"][data-asset="prompt:alice"]'
    )
    assert cell.text == "ciphertext"
    assert "capped" in (cell.get_attribute("class") or "")

    audit = audit_run(default_run)
    refused = browser.find_elements(By.CSS_SELECTOR, "#sequence g.arrow.refused")
    assert len(refused) == len(audit.blocked) == 2

    browser.find_element(By.CSS_SELECTOR, 'g.arrow.refused[data-sender="deployer"] .hit').click()
    details = browser.find_element(By.ID, "details").text
    for text in ("deployer", "guidelines_db", "walkthrough.sealed_prompt", "RULE_NOT_PERMITTED"):
        assert text in details
    assert "prompt:alice@ciphertext" in details
    # both sides' log entries: the deployer's sending and refused, the database's refusal
    assert "deployer #" in details and "guidelines_db #" in details

    Select(browser.find_element(By.ID, "filter-party")).select_by_value("hospital_1")
    arrows = browser.find_elements(By.CSS_SELECTOR, "#sequence g.arrow")
    shown = [a for a in arrows if a.is_displayed()]
    assert shown and all(
        "hospital_1" in (a.get_attribute("data-sender"), a.get_attribute("data-receiver"))
        for a in shown
    )
    assert len(shown) < len(arrows)
    Select(browser.find_element(By.ID, "filter-party")).select_by_value("")
    assert all(a.is_displayed() for a in arrows)

    browser.execute_script("document.getElementById('sequence-diagram').scrollIntoView()")
    screenshot = tmp_path / "report.png"
    assert browser.save_screenshot(str(screenshot))
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_a_failing_claim_is_shown_with_its_party_and_entry(
    tmp_path: Path, browser: webdriver.Chrome
) -> None:
    # the deployer refuses a plaintext prompt sent past alice's boundary, but
    # the bytes reached it: the guarantee fails at the deployer's entry
    result = run_default(tmp_path / "run", adversaries={"alice": "leaked_prompt"})
    [(claim, [finding])] = failing(result.audit).items()
    party, entry = re.match(r"(\w+) entry (\d+)", finding).groups()  # type: ignore[union-attr]
    _open(browser, result.run_dir / REPORT_HTML)

    [row] = browser.find_elements(By.CSS_SELECTOR, "tr.claim.fails")
    assert claim in row.text and "FAILS" in row.text
    assert f"{party} entry {entry}" in row.text
    link = row.find_element(By.CSS_SELECTOR, f'a[href="#e-{party}-{entry}"]')
    link.click()
    target = browser.find_element(By.ID, f"e-{party}-{entry}")
    assert target.is_displayed() and "refused" in target.text
    # a breach opens every asset's matrix, and marks the kind's column too
    assert browser.find_element(By.ID, "matrix-full").get_attribute("open") is not None
    cell = browser.find_element(By.CSS_SELECTOR, f'td[data-party="{party}"][data-asset].breach')
    assert cell.text == "plaintext" and cell.is_displayed()
    kind = cell.get_attribute("data-asset").split(":")[0]  # type: ignore[union-attr]
    column = browser.find_element(By.CSS_SELECTOR, f'td[data-party="{party}"][data-kind="{kind}"]')
    assert "breach" in (column.get_attribute("class") or "") and column.text == "plaintext"


def test_airlock_run_writes_the_report_and_prints_its_path(tmp_path: Path) -> None:
    done = airlock("run", "walkthrough", "--in-process", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stdout + done.stderr
    page = tmp_path / "run" / REPORT_HTML
    assert f"Report: {page}" in done.stdout and page.stat().st_size > 0


def test_bad_input_is_one_line_and_help_explains(default_run: Path, tmp_path: Path) -> None:
    for arguments, message in (
        ((str(tmp_path / "nowhere"),), "is not a run directory"),
        ((str(tmp_path),), "is not a run directory"),
        ((str(default_run), "--out", str(tmp_path)), "cannot write the report"),
        ((str(default_run), "--out", str(tmp_path / "no" / "r.html")), "cannot write the report"),
    ):
        done = airlock("report", *arguments)
        assert done.returncode == 2, done.stdout + done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    helped = airlock("report", "--help")
    assert helped.returncode == 0
    assert "sequence diagram" in helped.stdout and "--out" in helped.stdout


def test_the_figures_name_steps_the_protocols_have() -> None:
    """The figures find their envelopes by step name: each must still be a
    step of its protocol's rules."""
    from protocols.mpc.rules import Step as MpcStep
    from protocols.pir.rules import Step as PirStep
    from protocols.tee.rules import Step as TeeStep

    assert {report_figures.PIR_QUERY, report_figures.PIR_ANSWER} <= set(PirStep)
    assert report_figures.PROMPT_SHARES in set(MpcStep)
    assert {report_figures.APPRAISAL_REQUEST, report_figures.ATTESTATION_RESULT} <= set(TeeStep)


def test_the_answers_come_first_in_full_in_both_reports(
    rag_run: RunResult, browser: webdriver.Chrome
) -> None:
    """Each question, what was retrieved for it, the answer, its receipt and
    who saw what of it: one table at the top of report.md and report.html."""
    retrieved = result_of(rag_run, "alice", "retrieve")["answers"]
    answered = result_of(rag_run, "alice", "ask")["answers"]
    assert len(retrieved) == len(answered) == 2
    markdown = (rag_run.run_dir / "report.md").read_text()
    table = markdown.split("## Answers", 1)[1].split("\n## ", 1)[0]
    assert markdown.index("## Answers") < markdown.index("## Stage 1")
    for asked, answer in zip(retrieved, answered, strict=True):
        row = next(line for line in table.splitlines() if asked["prompt"] in line)
        assert asked["documents"][0] in row  # in full, never cut short
        assert answer["output"].strip() in row
        assert "signed by the enclave's attested key" in row
        assert "query:alice@share: guidelines_a, guidelines_b" in row
        assert "prompt:alice@ciphertext: deployer, enclave" in row

    _open(browser, rag_run.run_dir / REPORT_HTML)
    section = browser.find_element(By.ID, "answers")
    # at the top: the table's first row starts on the first screen, above the claims
    first = browser.find_element(By.CSS_SELECTOR, "#answers-table tr.question")
    assert first.location["y"] < browser.execute_script("return innerHeight")
    claims = browser.find_element(By.ID, "claims")
    assert section.location["y"] < claims.location["y"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#answers-table tr.question")
    assert len(rows) == 2
    for question, asked, answer in zip(rows, retrieved, answered, strict=True):
        cells = question.find_elements(By.TAG_NAME, "td")
        assert cells[3].text == asked["prompt"]
        assert asked["documents"][0] in cells[4].text
        assert cells[5].text == answer["output"].strip()
        assert "attested key" in cells[6].text
        assert "share query:alice: guidelines_a, guidelines_b" in cells[7].text
        assert "ciphertext prompt:alice: deployer, enclave" in cells[7].text
    # the stages, as a timeline, above it all
    stages = browser.find_elements(By.CSS_SELECTOR, "#timeline li.stage")
    assert [s.get_attribute("data-stage") for s in stages] == ["retrieval", "serve"]
    assert stages[0].location["y"] < section.location["y"]


def _lanes_shown(browser: webdriver.Chrome) -> dict[str, float]:
    """lane -> its x, for each lane line the diagram shows."""
    return {
        str(line.get_attribute("data-lane")): float(line.get_attribute("x1") or "nan")
        for line in browser.find_elements(By.CSS_SELECTOR, "#sequence line.lane")
        if line.value_of_css_property("display") != "none"
    }


def _arrows_shown(browser: webdriver.Chrome) -> list[WebElement]:
    return [
        a for a in browser.find_elements(By.CSS_SELECTOR, "#sequence g.arrow") if a.is_displayed()
    ]


def test_the_matrix_and_the_diagram_read_on_a_laptop_screen(
    rag_run: RunResult, tmp_path: Path, browser: webdriver.Chrome
) -> None:
    """At 1366x768: sensitive assets first, the party column sticky, a
    compact view by kind, lanes that fit and follow the filters, and
    expected views muted, not alarms."""
    _open(browser, rag_run.run_dir / REPORT_HTML)
    assert browser.execute_script("return innerWidth") == SCREEN[0]
    assert browser.save_screenshot(str(tmp_path / "top.png"))

    # the compact view: a column per kind, the sensitive kinds first, and
    # the kinds every party sees only as public folded into one, last
    kinds = [
        h.get_attribute("data-group")
        for h in browser.find_elements(By.CSS_SELECTOR, "#matrix-kinds th.asset")
    ]
    first = [k for k in kinds if k in page.SENSITIVE_KINDS]
    assert kinds[: len(first)] == first == ["prompt", "weights", "query", "output"]
    assert kinds[-1] == page.PUBLIC_ONLY
    compact = browser.find_element(By.CSS_SELECTOR, "#visibility .matrix-view")
    assert browser.execute_script("return arguments[0].scrollWidth", compact) <= SCREEN[0]
    browser.execute_script("document.getElementById('visibility').scrollIntoView()")
    assert browser.save_screenshot(str(tmp_path / "matrix.png"))

    # every asset, in the same order: sensitive first
    browser.find_element(By.CSS_SELECTOR, "#matrix-full summary").click()
    groups = [
        h.get_attribute("data-group")
        for h in browser.find_elements(By.CSS_SELECTOR, "#matrix th.asset")
    ]
    in_order = list(dict.fromkeys(groups))  # each kind once, where it first comes
    assert in_order[: len(first)] == first
    assert not set(in_order[len(first) :]) & set(page.SENSITIVE_KINDS)
    # the party column stays where it is while the assets scroll sideways
    view = browser.find_element(By.CSS_SELECTOR, "#matrix-full .matrix-view")
    browser.execute_script(
        "arguments[0].style.width = '360px'; arguments[0].scrollLeft = 300", view
    )
    assert browser.execute_script("return arguments[0].scrollLeft", view) > 0
    party = browser.find_element(By.CSS_SELECTOR, "#matrix tr:nth-child(2) th.party")
    assert party.value_of_css_property("position") == "sticky"
    assert abs(party.rect["x"] - view.rect["x"]) <= 2 and party.is_displayed()
    browser.execute_script("arguments[0].style.width = ''; arguments[0].scrollLeft = 0", view)

    # no guarantee limits a cell: muted (expected), never an alarm; the
    # party's own asset: neutral
    cells = [c for c in browser.find_elements(By.CSS_SELECTOR, "#matrix td.cell") if c.text]
    marks = [set((c.get_attribute("class") or "").split()) for c in cells]
    assert all(m & {"capped", "open", "own"} for m in marks)
    assert not any("breach" in m for m in marks)
    muted = [c for c, m in zip(cells, marks, strict=True) if "open" in m]
    assert muted and all(float(c.value_of_css_property("opacity")) < 1 for c in muted)

    # the lanes fit the width beside the details panel: no sideways scroll
    browser.execute_script("document.getElementById('sequence-diagram').scrollIntoView()")
    diagram = browser.find_element(By.CSS_SELECTOR, ".scroll.diagram")
    width = browser.execute_script("return arguments[0].clientWidth", diagram)
    assert browser.execute_script("return arguments[0].scrollWidth", diagram) <= width
    everyone = _lanes_shown(browser)
    assert set(everyone) == set(rag_run.audit.visibility)
    # 14 lanes (the healthcare run) fit the same width
    assert diagram_module.FIT_WIDTH <= width
    gap = diagram_module.gap_for(14)
    assert diagram_module.LEFT + 14 * gap + diagram_module.RIGHT <= diagram_module.FIT_WIDTH
    assert browser.save_screenshot(str(tmp_path / "diagram.png"))

    # the lanes follow the filters: only those of the arrows shown, spread
    # over the width again, each arrow from its sender's lane to its receiver's
    for select, value in (("stage", "retrieval"), ("party", "verifier")):
        Select(browser.find_element(By.ID, f"filter-{select}")).select_by_value(value)
        lanes = _lanes_shown(browser)
        arrows = _arrows_shown(browser)
        ends = {str(a.get_attribute(k)) for a in arrows for k in ("data-sender", "data-receiver")}
        assert arrows and set(lanes) == ends and len(lanes) < len(everyone)
        names = [
            n.get_attribute("data-lane")
            for n in browser.find_elements(By.CSS_SELECTOR, "#lane-names g.lane-name")
            if n.is_displayed()
        ]
        assert set(names) == ends
        for arrow in arrows:
            shaft = arrow.find_element(By.CSS_SELECTOR, "line.shaft")
            for end, side in (("x1", "data-sender"), ("x2", "data-receiver")):
                assert float(shaft.get_attribute(end) or 0) == lanes[str(arrow.get_attribute(side))]
        # spread out again: evenly, as far apart as the width allows
        xs = sorted(lanes.values())
        gaps = {b - a for a, b in zip(xs, xs[1:], strict=False)}
        fit = (width - diagram_module.LEFT - diagram_module.RIGHT) // len(xs)
        assert len(gaps) == 1 and abs(gaps.pop() - min(diagram_module.MAX_GAP, fit)) <= 2
        Select(browser.find_element(By.ID, f"filter-{select}")).select_by_value("")
    assert _lanes_shown(browser) == everyone


def test_a_question_refused_or_a_record_unreadable_still_reads() -> None:
    """A question with no answer says why; a manifest the answers cannot
    read is one line on the page, never a failed report."""
    grounded = "question: is it safe?\ncontext: guideline 0007: take care.\nanswer:"
    refused = {
        "protocol": "tee",
        "action": "ask",
        "party": "alice",
        "stage": "serve",
        "result": {"answers": [], "refused": [f"{grounded!r}: not sent: the enclave lies"]},
    }
    [answer] = report_answers.answers([refused], {})
    assert (answer.question, answer.answer) == ("is it safe?", None)
    assert answer.refused == "not sent: the enclave lies"
    assert answer.retrieved == ["guideline 0007: take care. (given with the prompt, not retrieved)"]
    html = report_answers.answers_html([refused], [])
    assert "no answer: not sent: the enclave lies" in html and "is it safe?" in html
    broken = {**refused, "result": {"answers": [5]}}
    assert "lack what the answers need" in report_answers.answers_html([broken], [])
    assert "No end user asked" in report_answers.answers_html([], [])
