"""The documentation site in a real browser: `make docs` once, then Debian's chromium through playwright.

Every page loads without a console error, a failed request, a broken internal link or image;
the search finds FGM and leads to its API entry; every exported name has an entry on its
module's page; screenshots of the home page and a module page go to _docs/_screenshots/.
"""
import ast, functools, http.server, importlib, inspect, os, re, shutil, subprocess, threading
from pathlib import Path
from urllib.parse import urlsplit, unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT/'_docs'
SHOTS = DOCS/'_screenshots'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync']

def _chromium():
    "Debian's chromium, installed with apt-get when missing and we may; None when it cannot be had"
    if shutil.which('chromium'): return shutil.which('chromium')
    if shutil.which('apt-get') and hasattr(os, 'geteuid') and os.geteuid() == 0:
        subprocess.run(['apt-get', 'update', '-qq'], capture_output=True, timeout=600)
        subprocess.run(['apt-get', 'install', '-y', '-qq', 'chromium'], capture_output=True, timeout=900)
    return shutil.which('chromium')

@pytest.fixture(scope='session')
def site():
    "Build the site once with `make docs` (it installs the docs extra when missing)"
    r = subprocess.run(['make', 'docs'], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"make docs failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    assert (DOCS/'index.html').exists()
    return DOCS

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

@pytest.fixture(scope='session')
def base_url(site):
    "The site served on the loopback interface (search needs http, not file://)"
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown(); srv.server_close()

@pytest.fixture(scope='session')
def browser(site):
    exe = _chromium()
    if exe is None: pytest.skip("Debian's chromium is not installed and apt-get could not install it (not root, or no package source)")
    sync_api = importlib.import_module('playwright.sync_api')   # installed by `make docs` (the docs extra)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()

@pytest.fixture
def page(browser):
    "A page that records console errors, uncaught exceptions and failed requests"
    pg = browser.new_page(viewport={'width': 1280, 'height': 900})
    pg.problems = []
    pg.on('console', lambda m: m.type == 'error' and pg.problems.append(f'console: {m.text}'))
    pg.on('pageerror', lambda e: pg.problems.append(f'exception: {e}'))
    # a request the browser aborts because the test moved on to the next page (the favicon, fetched after
    # `load`) is not a fault of the site; a missing file still shows as an HTTP 404 through 'response'
    pg.on('requestfailed', lambda r: 'ERR_ABORTED' not in (r.failure or '') and pg.problems.append(f'request failed: {r.url} ({r.failure})'))
    pg.on('response', lambda r: r.status >= 400 and pg.problems.append(f'HTTP {r.status}: {r.url}'))
    yield pg
    pg.close()

def _pages(site):
    return sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html')
                  if not p.relative_to(site).parts[0].startswith('_'))

@functools.lru_cache(maxsize=None)
def _ids(path:Path) -> frozenset:
    return frozenset(re.findall(r'\bid="([^"]+)"', path.read_text(encoding='utf-8')))

def _internal_problem(url:str, base:str, site:Path):
    "Why an internal URL is broken (missing file or fragment), or None"
    if not url.startswith(base): return None
    parts = urlsplit(url)
    rel = unquote(parts.path[len(urlsplit(base).path):]) or 'index.html'
    target = site/rel
    if target.is_dir(): target = target/'index.html'
    if not target.is_file(): return f'missing file {rel}'
    frag = unquote(parts.fragment)
    if frag and target.suffix == '.html' and frag not in _ids(target): return f'no element with id {frag!r} in {rel}'
    return None

def test_every_page_loads_clean(site, base_url, page):
    "No console error, no failed request, no broken internal link or image, on any page"
    pages, problems = _pages(site), []
    assert {'index.html', 'design.html', 'results.html', 'search.html', 'adversarial.html'} <= set(pages), pages
    for rel in pages:
        page.problems.clear()
        page.goto(base_url + rel, wait_until='load')
        problems += [f'{rel}: {p}' for p in page.problems]
        hrefs = page.eval_on_selector_all('a[href]', 'els => els.map(e => e.href)')
        problems += [f'{rel}: link {h}: {why}' for h in set(hrefs) if (why := _internal_problem(h, base_url, site))]
        if page.locator('span.math, div.math').count():   # MathJax ships with the site: formulas typeset offline
            try: page.wait_for_selector('mjx-container', timeout=15_000)
            except Exception: problems.append(f'{rel}: formulas not typeset (MathJax did not load)')
        broken = page.eval_on_selector_all('img', 'els => els.filter(e => !(e.complete && e.naturalWidth > 0)).map(e => e.src)')
        problems += [f'{rel}: broken image {s}' for s in broken]
    assert not problems, '\n'.join(problems)

def _fgm_params():
    from fmcombo.adversarial import FGM
    return [n for n, p in inspect.signature(FGM).parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

def test_search_finds_fgm_api_entry(base_url, page):
    "Searching FGM offers its API entry; following it shows the signature with each parameter"
    page.goto(base_url + 'search.html?q=FGM')
    page.wait_for_selector('#search-results ul.search li a', timeout=20_000)
    results = page.eval_on_selector_all('#search-results ul.search li a', 'els => els.map(e => [e.textContent, e.href])')
    hits = [href for text, href in results if text.strip().endswith('FGM') and '/adversarial.html#' in href]
    assert hits, f'no search result leads to an FGM section of adversarial.html: {results}'
    params, seen = _fgm_params(), []
    assert params, 'FGM has no parameters to look for'
    for href in hits:
        page.goto(href)
        frag = urlsplit(href).fragment
        entry = page.locator(f'section[id="{frag}"]')
        if not entry.count(): continue
        sig = ' '.join(entry.first.locator('pre').all_inner_texts())
        seen.append(sig)
        if re.search(r'\bFGM\(', sig) and all(re.search(rf'\b{p}\s*[:=]', sig) for p in params):
            assert entry.first.locator('pre').first.is_visible()
            return
    pytest.fail(f'no FGM search result shows a signature with every parameter {params}; signatures seen: {seen}')

def _modules():
    mods = {}
    for py in sorted((ROOT/'fmcombo').glob('*.py')):
        if py.stem.startswith('_'): continue
        tree = ast.parse(py.read_text())
        names = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                      and any(getattr(t, 'id', None) == '__all__' for t in n.targets)), [])
        mods[py.stem] = names
    return mods

def test_every_exported_name_has_an_api_entry(site):
    "Each name in a module's `__all__` has an anchored entry on that module's page"
    missing = []
    for mod, names in _modules().items():
        page = site/f'{mod}.html'
        if not page.exists(): missing.append(f'{mod}: no page {page.name}'); continue
        missing += [f'{mod}.{n}' for n in names if n.lower() not in _ids(page)]
    assert not missing, 'exported names without an API entry:\n' + '\n'.join(missing)

def test_tutorial_pages_show_a_figure(site, base_url, page):
    tutorials = sorted((site/'tutorials').glob('*.html')) if (site/'tutorials').exists() else []
    if not tutorials: pytest.skip('no tutorial in nbs/tutorials/ yet')
    for t in tutorials:
        page.goto(base_url + t.relative_to(site).as_posix())
        assert page.locator('article img').count() > 0, f'{t.name} shows no figure'

def test_screenshots(site, base_url, page):
    "Screenshots of the home page, a module page and the first tutorial (when there is one)"
    SHOTS.mkdir(exist_ok=True)
    shots = {'home': 'index.html', 'adversarial': 'adversarial.html'}
    tutorials = sorted((site/'tutorials').glob('*.html')) if (site/'tutorials').exists() else []
    if tutorials: shots['tutorial'] = tutorials[0].relative_to(site).as_posix()
    for name, rel in shots.items():
        page.goto(base_url + rel)
        out = SHOTS/f'{name}.png'
        page.screenshot(path=str(out), full_page=False)
        assert out.stat().st_size > 10_000, f'{out} looks empty'

def test_module_docstrings_link_to_real_pages(site):
    "The `Docs:` link in each module's docstring names a page the site has"
    base = 'https://fmcombo.github.io/fmcombo/'
    missing = []
    for py in sorted((ROOT/'fmcombo').glob('*.py')):
        doc = ast.get_docstring(ast.parse(py.read_text())) or ''
        missing += [f'{py.name}: {u}' for u in re.findall(re.escape(base) + r'(\S+)', doc) if not (site/u.rstrip('.')).is_file()]
    assert not missing, 'docstring links to pages the site lacks:\n' + '\n'.join(missing)
