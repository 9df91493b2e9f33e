"""``report.html``: written by ood_test and compare_results, loaded in a real
headless Chromium (Debian's, driven by Playwright's ``executable_path``):
no console error, every image decoded, every number equal to
``results.json`` / ``per_image.csv``, sorting by a header works."""
import csv
import json
import math
import os
import os.path as osp
import shutil

import pytest

from conftest import ONE_THREAD_ENV, QUICK_OPTIONS, STREET_CONFIG, run_tool
from mmseg_ood.errors import InvalidValueError
from mmseg_ood.reports.html_report import (best_values,
                                           comparison_report_html,
                                           run_report_html)
from mmseg_ood.reports.results import percent

#: Chromium flags for a closed network, as root, with no display.
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic',
                 '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync',
                 '--disable-dev-shm-usage']


def _chromium() -> str:
    path = os.environ.get('MMSEG_OOD_CHROMIUM') or shutil.which(
        'chromium') or shutil.which('chromium-browser')
    if not path:
        pytest.skip('no Chromium: install Debian\'s chromium package '
                    '(scripts/install_browser.sh, run by make test) or set '
                    'MMSEG_OOD_CHROMIUM')
    return path


@pytest.fixture(scope='module')
def browser():
    sync_api = pytest.importorskip(
        'playwright.sync_api', reason='playwright (the [dev] extra)')
    path = _chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True,
                              args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, path):
    """Load ``path``; return the page and the console errors / page
    errors / failed requests seen while loading."""
    page = browser.new_page(viewport=dict(width=1280, height=900))
    problems = []
    page.on('console', lambda m: m.type == 'error' and problems.append(
        f'console: {m.text}'))
    page.on('pageerror', lambda e: problems.append(f'page error: {e}'))
    page.on('requestfailed', lambda r: problems.append(
        f'request failed: {r.url}'))
    page.goto(f'file://{path}', wait_until='load')
    return page, problems


def _images_decoded(page) -> list:
    """The images that did not decode (alt texts); also awaits decode()."""
    return page.evaluate("""async () => {
        const bad = [];
        for (const img of document.images) {
            try { await img.decode(); } catch (e) {
                bad.push(img.alt); continue;
            }
            if (!img.complete || img.naturalWidth === 0) bad.push(img.alt);
        }
        return bad;
    }""")


def _metric_cells(page) -> list:
    return page.evaluate("""() => Array.from(
        document.querySelectorAll('table.results td[data-key]')).map(td => ({
            dataset: td.closest('table').dataset.dataset,
            run: td.dataset.run || null, scorer: td.dataset.scorer,
            key: td.dataset.key, value: td.dataset.value,
            text: td.textContent, best: td.classList.contains('best')}))""")


@pytest.fixture(scope='module')
def report_run(tmp_path_factory, synthetic_root, trained_work_dir):
    """One ood_test run with per-image metrics: its work dir."""
    work = tmp_path_factory.mktemp('report')
    ckpt = open(osp.join(trained_work_dir, 'last_checkpoint')).read().strip()
    run_tool('ood_test.py', STREET_CONFIG, ckpt, '--work-dir', str(work),
             '--scorers', 'msp', 'energy', 'max_logit', '--per-image',
             '--cfg-options', *QUICK_OPTIONS,
             env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    return work


def test_run_report_in_chromium_matches_results_json(browser, report_run):
    payload = json.loads((report_run / 'results.json').read_text())
    page, problems = _open(browser, str(report_run / 'report.html'))
    assert problems == []
    alts = page.evaluate('Array.from(document.images).map(i => i.alt)')
    for d in payload['results']:  # ROC, PR, histograms, best / worst
        for what in ('ROC curves', 'precision-recall curves',
                     'score histograms'):
            assert any(what in a and a.endswith(d) for a in alts)
    assert any(a.startswith('highest AP 1') for a in alts)
    # 3 images: the lowest ones are those not already among the highest
    assert not any(a.startswith('lowest AP') for a in alts)
    assert _images_decoded(page) == []
    cells = _metric_cells(page)
    results = payload['results']
    expected = {(d, s, k) for d, per in results.items()
                for s, row in per.items() for k in row
                if k in ('auroc', 'ap', 'fpr95', 'per_image_ap')}
    seen = set()
    for c in cells:
        v = results[c['dataset']][c['scorer']].get(c['key'])
        seen.add((c['dataset'], c['scorer'], c['key']))
        if v is None or not math.isfinite(v):
            assert c['value'] == 'NaN' and c['text'].startswith('n/a')
            continue
        assert float(c['value']) == v  # the very number of the file
        if c['key'] != 'component_threshold':
            assert c['text'] == percent(v)
    assert expected <= seen
    # best per column: the highest (lowest FPR95) of the shown values
    for d, per in results.items():
        for key in ('auroc', 'ap', 'fpr95'):
            values = [r[key] for r in per.values() if r.get(key) is not None]
            want = min(values) if key == 'fpr95' else max(values)
            marked = {c['scorer'] for c in cells if c['dataset'] == d and
                      c['key'] == key and c['best']}
            assert marked == {s for s, r in per.items() if r[key] == want}
    # the per-image table: one row per image, values of per_image.csv
    with open(report_run / 'per_image.csv') as f:
        rows = list(csv.DictReader(f))
    assert {'ood_share', 'ood_components', 'ood_pixels'} <= set(rows[0])
    table = page.evaluate("""() => {
        const t = document.querySelector('table.per-image');
        const heads = Array.from(t.tHead.rows[0].cells).map(
            c => c.textContent);
        const body = Array.from(t.tBodies[0].rows).map(r => Array.from(
            r.cells).map(c => c.dataset.value ?? c.getAttribute('title') ??
                          c.textContent));
        return {heads, body};
    }""")
    heads = table['heads']
    images = {r['image'] for r in rows}
    assert len(table['body']) == len(images)
    by_image = {r[heads.index('image')]: r for r in table['body']}
    for r in rows:
        shown = by_image[r['image']]
        assert float(shown[heads.index('OOD components')]) == \
            float(r['ood_components'])
        if r['scorer']:
            assert float(shown[heads.index(f'{r["scorer"]} AP')]) == \
                float(r['ap'])
    # clicking "energy AP" sorts the rows by it, ascending then descending
    col = heads.index('energy AP')
    header = page.locator('table.per-image th').nth(col)

    def column():
        return [float(v) for v in page.evaluate(
            f"""() => Array.from(document.querySelectorAll(
            'table.per-image tbody tr')).map(r => r.cells[{col}]
            .dataset.value)""") if v != 'NaN']

    header.click()
    assert column() == sorted(column())
    header.click()
    assert column() == sorted(column(), reverse=True)
    assert problems == []
    page.close()


def test_compare_results_report_in_chromium(browser, report_run, tmp_path):
    root = tmp_path / 'root'
    for name in ('a', 'b'):
        shutil.copytree(report_run, root / name / 'ood')
    out = tmp_path / 'compare.html'
    run_tool('compare_results.py', str(root), 'a', 'b',
             '--scorers', 'msp', 'energy', '--report', str(out))
    page, problems = _open(browser, str(out))
    assert problems == []
    assert _images_decoded(page) == []
    payload = json.loads((report_run / 'results.json').read_text())
    cells = _metric_cells(page)
    assert {c['run'] for c in cells} == {'a', 'b'}
    assert len(cells) == 2 * 2 * len(payload['results']) * 3
    for c in cells:
        assert float(c['value']) == \
            payload['results'][c['dataset']][c['scorer']][c['key']]
    page.close()


def test_names_are_escaped_and_a_payload_without_results_refused(tmp_path):
    payload = dict(config='c.py', results={'d<1>': {
        '<img src=x onerror=alert(1)>': dict(auroc=0.5, ap=0.25,
                                              fpr95=float('nan'))}})
    page = run_report_html(payload, str(tmp_path))
    assert '<img src=x' not in page and '&lt;img src=x' in page
    assert 'data-value="NaN"' in page and 'n/a' in page
    with pytest.raises(InvalidValueError, match='no "results"'):
        run_report_html(dict(config='c.py'), str(tmp_path))


def test_best_values_by_direction():
    rows = dict(a=dict(ap=0.2, fpr95=0.5), b=dict(ap=0.3, fpr95=0.7),
                c=dict(ap=float('nan'), fpr95=None))
    assert best_values(rows, ['ap', 'fpr95', 'siou']) == dict(ap=0.3,
                                                              fpr95=0.5)


def test_comparison_marks_the_best_over_all_runs(tmp_path):
    runs = dict(r1=dict(results=dict(d=dict(s=dict(ap=0.1, fpr95=0.3)))),
                r2=dict(results=dict(d=dict(s=dict(ap=0.2, fpr95=0.4)))))
    page = comparison_report_html(runs, dict(r1=str(tmp_path),
                                             r2=str(tmp_path)),
                                  ['d'], ['s'], ['ap', 'fpr95'])
    assert page.count('class="best"') == 2
    assert '<td class="best" data-key="ap" data-value="0.2" ' \
        'data-run="r2"' in page
    assert '<td class="best" data-key="fpr95" data-value="0.3" ' \
        'data-run="r1"' in page


def test_the_browser_check_sees_a_script_error_and_a_broken_image(
        browser, tmp_path):
    """The checks above can fail: a page with a throwing script and an
    image that does not decode is caught by both."""
    bad = tmp_path / 'bad.html'
    bad.write_text('<html><body><img alt="broken" src="data:image/png;'
                   'base64,iVBORw0KGgoAAAA"><script>null.x()</script>'
                   '</body></html>')
    page, problems = _open(browser, str(bad))
    assert any(p.startswith('page error') for p in problems)
    assert _images_decoded(page) == ['broken']
    page.close()
