"""Build the documentation site offline into _docs/ (`make docs`).

Quarto, nbdev's own renderer, cannot be installed everywhere, so the site is built without it:

1. nbdev's `proc_nbs()` writes its processed notebooks to `_proc/` (export cells replaced by their
   `show_doc` API entries). Its processing executes the cells that import something; a cell of
   that kind whose example needs a variable from a cell it does not run fails with a NameError
   (and one that trains a model takes minutes), so of an example cell only its import statements
   are run, and every example cell keeps the outputs committed in its notebook. Export and
   `show_doc` cells run as nbdev runs them, and an error there fails the build.
2. `convert_nb` turns each processed notebook into a plain one under `_site/src/`: front matter
   to a title cell, `show_doc` outputs to markdown cells (without the `---` rules that Sphinx
   rejects, with nbdev's anchors and links made relative), `#|` directives to myst-nb tags.
3. Sphinx with myst-nb (no execution) and the furo theme builds `_docs/`, with `-W`: a warning
   fails the build. The results page comes from `benchmarks/results/*.json`.

Usage: python tools/build_site.py [--workers N] [--force]
"""
from __future__ import annotations
import argparse, ast, html, json, os, re, subprocess, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS, PROC, SRC, OUT = ROOT/'nbs', ROOT/'_proc', ROOT/'_site'/'src', ROOT/'_docs'
DOCTREES = ROOT/'_site'/'doctrees'
SITE_URL = 'https://fmcombo.github.io/fmcombo/'
DOC_DIRECTIVES = {'export', 'exports', 'exporti', 'exec_doc'}

# --- 1. nbdev's processing ------------------------------------------------------------------

def _imports_only(cell) -> str:
    "The top-level import statements of a cell's source"
    try: tree = ast.parse(cell.source)
    except SyntaxError: return ''
    return '\n'.join(ast.get_source_segment(cell.source, n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))

def _patch_exec_show_docs():
    "Run export and show_doc cells as nbdev does, only the imports of example cells; examples keep their committed outputs"
    from nbdev import processors as P
    if getattr(P.exec_show_docs, '_fmcombo_patched', False): return
    orig = P.exec_show_docs.__call__
    def __call__(self, cell):
        with warnings.catch_warnings():   # nbdev warns of cells that mix imports and code: examples do, on purpose
            warnings.simplefilter('ignore', UserWarning)
            evals = cell.cell_type == 'code' and P._do_eval(cell)
        if not evals or not getattr(self, 'k', None): return orig(self, cell)
        if cell.directives_.keys() & DOC_DIRECTIVES or P._show_docs(cell.parsed_() or []): return orig(self, cell)
        src = _imports_only(cell)
        if src: self.k.run(src)
        self.k.exc = None
    P.exec_show_docs.__call__ = __call__
    P.exec_show_docs._fmcombo_patched = True

def proc_one(o):
    "nbdev's per-file driver, with example cells allowed to fail (runs in a worker process)"
    _patch_exec_show_docs()
    warnings.filterwarnings('ignore', message='Cell is missing an id field')   # nbdev adds its show_doc cells without ids
    import nbdev.serve_drv
    return getattr(nbdev.serve_drv, '_fmcombo_orig_main', nbdev.serve_drv.main)(o)

def process(workers:int=2, force:bool=False) -> Path:
    "nbdev's `proc_nbs()` into `_proc/`, cached by modification time"
    import nbdev.serve, nbdev.serve_drv
    if str(ROOT/'tools') not in sys.path: sys.path.insert(0, str(ROOT/'tools'))
    import build_site   # the workers are spawned: they find `proc_one` by this module's name, not as __main__'s
    if not hasattr(nbdev.serve_drv, '_fmcombo_orig_main'): nbdev.serve_drv._fmcombo_orig_main = nbdev.serve_drv.main
    nbdev.serve_drv.main = build_site.proc_one
    _patch_exec_show_docs()
    return nbdev.serve.proc_nbs(n_workers=workers, force=force)

# --- 2. processed notebooks to plain notebooks ----------------------------------------------

_re_directive = re.compile(r'^\s*#\|\s*(.*?)\s*$')
_re_site_link = re.compile(r'\[([^\]]*)\]\(' + re.escape(SITE_URL) + r'([^)#\s]*)(#[^)\s]*)?\)')
_re_source = re.compile(r'\[source\]\(([^)\s]+)\)\{[^}]*\}')
_re_heading = re.compile(r'^(#{1,6})\s+(.*?)\s*$')

def page_name(nb_path:Path, front:dict) -> str:
    "The page's path in the site without suffix: nbdev's `output-file` (`02_perturb` → `perturb`)"
    rel = nb_path.relative_to(PROC)
    out = front.get('output-file')
    stem = Path(out).stem if out else re.sub(r'^\d+[a-z]?_', '', rel.stem)
    return str(rel.parent/stem) if rel.parent != Path('.') else stem

def _md_inline(text:str) -> str:
    "Backtick code and plain text of a link label as HTML"
    parts = re.split(r'(`[^`]*`)', text)
    return ''.join(f'<code>{html.escape(p[1:-1])}</code>' if p.startswith('`') and p.endswith('`') else html.escape(p)
                   for p in parts)

def fix_links(md:str, page:str) -> str:
    "nbdev's absolute links to the site's pages as relative raw-HTML links (Sphinx leaves them alone)"
    up = '../'*page.count('/')
    def sub(m):
        label, target, anchor = m.group(1), m.group(2) or 'index.html', m.group(3) or ''
        if target.endswith('.html.md'): target = target[:-3]
        return f'<a class="reference internal" href="{up}{target}{anchor}">{_md_inline(label)}</a>'
    return _re_site_link.sub(sub, md)

def showdoc_md(md:str, page:str) -> str:
    "A show_doc output as markdown Sphinx accepts: no `---` rules, an anchor as nbdev names it, source link as HTML"
    lines, out = md.splitlines(), []
    for line in lines:
        if line.strip() == '---': continue
        line = _re_source.sub(lambda m: f'<a class="sd-source" href="{m.group(1)}">source</a>', line)
        h = _re_heading.match(line)
        if h and not out_has_anchor(out):
            name = re.sub(r'<[^>]+>|`', '', h.group(2)).strip()
            out.append(f'<div class="sd-entry" id="{html.escape(name.lower())}"></div>\n')
        out.append(line)
    return fix_links('\n'.join(out), page)

def out_has_anchor(out:list) -> bool: return any('class="sd-entry"' in o for o in out)

def parse_front(cell:dict) -> dict:
    import yaml
    src = ''.join(cell['source']).strip()
    if not src.startswith('---'): return {}
    return yaml.safe_load(src.strip('-\n')) or {}

def _src(cell) -> str: return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']

def _directives(src:str):
    "(directives as a dict, source without them)"
    dirs, keep = {}, []
    for line in src.splitlines():
        m = _re_directive.match(line)
        if m and not keep:
            k, _, v = m.group(1).partition(':')
            dirs[k.strip()] = v.strip() or True
        else: keep.append(line)
    return dirs, '\n'.join(keep).strip('\n')

def _md_cell(src:str) -> dict: return {'cell_type': 'markdown', 'metadata': {}, 'source': src}

def _markdown_output(cell) -> str|None:
    for o in cell.get('outputs', []):
        data = o.get('data', {})
        if 'text/markdown' in data:
            v = data['text/markdown']
            return ''.join(v) if isinstance(v, list) else v
    return None

def convert_nb(nb:dict, page:str) -> dict:
    "A processed notebook as a plain one myst-nb renders without warnings"
    cells, front = [], {}
    for i, cell in enumerate(nb['cells']):
        src = _src(cell)
        if i == 0 and cell['cell_type'] == 'raw':
            front = parse_front(cell)
            title, desc = front.get('title'), front.get('description')
            head = (f'# {title}\n' if title else '') + (f'\n> {desc}\n' if desc else '')
            if head: cells.append(_md_cell(head))
            continue
        if cell['cell_type'] == 'raw': continue
        if cell['cell_type'] == 'markdown':
            if src.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
            cells.append(_md_cell(fix_links(src, page)))
            continue
        dirs, code = _directives(src)
        if dirs.get('hide') or str(dirs.get('include', '')).lower() == 'false': continue
        md = _markdown_output(cell)
        if str(dirs.get('output', '')).lower() == 'asis' and md is not None:
            cells.append(_md_cell(showdoc_md(md, page) if 'show_doc' in code else fix_links(md, page)))
            continue
        tags = []
        if str(dirs.get('echo', '')).lower() == 'false': tags.append('remove-input')
        if str(dirs.get('output', '')).lower() == 'false': tags.append('remove-output')
        if not code.strip() and not cell.get('outputs'): continue
        outputs = []
        for o in cell.get('outputs', []):
            o = dict(o)
            if 'metadata' in o and o['output_type'] in ('display_data', 'execute_result'): o['metadata'] = {}
            outputs.append(o)
        cells.append({'cell_type': 'code', 'execution_count': cell.get('execution_count'),
                      'metadata': {'tags': tags} if tags else {}, 'outputs': outputs, 'source': code})
    meta = {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'},
            'language_info': {'name': 'python', 'pygments_lexer': 'ipython3'}}
    return {'cells': cells, 'metadata': meta, 'nbformat': 4, 'nbformat_minor': 5}, front

# --- exported names that show_doc does not document (constants) -----------------------------

def module_of(nb_path:Path) -> str|None:
    "The module a source notebook exports to (`#| default_exp`), if any"
    for cell in json.loads(nb_path.read_text())['cells']:
        if cell['cell_type'] != 'code': continue
        m = re.search(r'^\s*#\|\s*default_exp\s+(\S+)', _src(cell), re.M)
        if m: return m.group(1)
    return None

def exported_names(module:str) -> list:
    py = ROOT/'fmcombo'/(module.replace('.', '/') + '.py')
    tree = ast.parse(py.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '__all__' for t in node.targets):
            return ast.literal_eval(node.value)
    return []

def constants_md(module:str, documented:set) -> str:
    "A table of the exported names show_doc has no entry for: value and the comment beside it"
    py = ROOT/'fmcombo'/(module.replace('.', '/') + '.py')
    text = py.read_text(); lines = text.splitlines(); tree = ast.parse(text)
    missing = [n for n in exported_names(module) if n.lower() not in documented]
    if not missing: return ''
    rows = []
    for node in tree.body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)): continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            name = getattr(t, 'id', None)
            if name not in missing: continue
            value = ast.get_source_segment(text, node.value) or ''
            value = ' '.join(value.split())
            if len(value) > 120: value = value[:117] + '...'
            comment = lines[node.end_lineno-1].partition('#')[2].strip() if '#' in lines[node.end_lineno-1] else ''
            rows.append((name, value, comment))
    found = {r[0] for r in rows}
    rows += [(n, '', '') for n in missing if n not in found]
    out = ['## Constants\n', 'Exported names that are values rather than functions or classes.\n', '<table class="docutils">',
           '<thead><tr><th>name</th><th>value</th><th>note</th></tr></thead><tbody>']
    for name, value, comment in rows:
        out.append(f'<tr><td><code id="{html.escape(name.lower())}">{html.escape(name)}</code></td>'
                   f'<td><code>{html.escape(value)}</code></td><td>{_md_inline(comment)}</td></tr>')
    out.append('</tbody></table>\n')
    return '\n'.join(out)

def documented_names(nb:dict) -> set:
    return {m for c in nb['cells'] if c['cell_type'] == 'markdown'
            for m in re.findall(r'class="sd-entry" id="([^"]+)"', _src(c))}

# --- the results page -----------------------------------------------------------------------

def _cell_text(v) -> str:
    if isinstance(v, float): v = f'{v:.4g}'
    elif isinstance(v, (list, dict)): v = json.dumps(v, ensure_ascii=False)
    s = str(v).replace('|', '\\|').replace('\n', ' ')
    return s if len(s) <= 160 else s[:157] + '...'

def _table(rows:list) -> str:
    cols = []
    for r in rows:
        for k in r:
            if k not in cols: cols.append(k)
    out = ['| ' + ' | '.join(_cell_text(c) for c in cols) + ' |', '|' + '---|'*len(cols)]
    out += ['| ' + ' | '.join(_cell_text(r.get(c, '')) for c in cols) + ' |' for r in rows]
    return '\n'.join(out) + '\n'

def _git_date(path:Path) -> str:
    try:
        r = subprocess.run(['git', 'log', '-1', '--format=%cs', '--', str(path)], cwd=ROOT, capture_output=True, text=True, timeout=30)
        return r.stdout.strip() or 'not committed'
    except (OSError, subprocess.SubprocessError): return 'unknown'

_LONG_LISTS = {'runs', 'merged'}

def _render(d:dict, level:int) -> list:
    scalars, out = [], []
    for k, v in d.items():
        if k in ('command', 'machine', 'torch_threads'): continue
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            if k in _LONG_LISTS: scalars.append((k, f'{len(v)} rows in the file'))
            else: out += [f'{"#"*level} {k}\n', _table(v)]
        elif isinstance(v, dict) and v and any(isinstance(x, (dict, list)) for x in v.values()):
            out += [f'{"#"*level} {k}\n'] + _render(v, min(level+1, 6))
        else: scalars.append((k, v))
    lines = [f'- **{html.escape(str(k))}**: {_cell_text(v)}' for k, v in scalars]
    return ['\n'.join(lines) + '\n'] + out if lines else out

def results_md() -> str:
    files = sorted((ROOT/'benchmarks'/'results').glob('*.json'))
    out = ['# Results\n',
           'The figures behind the defaults and the claims in these pages, as the benchmark scripts in '
           '`benchmarks/` wrote them to `benchmarks/results/`. Each section gives the date the file was last '
           'committed, the command that produced it, and the machine and library versions where the file records them.\n']
    for f in files:
        d = json.loads(f.read_text())
        out.append(f'## {f.stem}\n')
        meta = [f'- **file**: `benchmarks/results/{f.name}`', f'- **date** (last commit): {_git_date(f)}']
        if isinstance(d, dict):
            if 'command' in d: meta.append(f'- **command**: `{d["command"]}`')
            m = d.get('machine')
            if isinstance(m, dict):
                meta.append('- **machine and versions**: ' + ', '.join(f'{k} {_cell_text(v)}' for k, v in m.items()))
            else: meta.append('- **machine and versions**: not recorded in this file' +
                              (f' (torch threads: {d["torch_threads"]})' if 'torch_threads' in d else ''))
        out.append('\n'.join(meta) + '\n')
        out += _render(d, 3) if isinstance(d, dict) else [_table(d) if d and isinstance(d[0], dict) else f'`{_cell_text(d)}`\n']
    return '\n'.join(out)

# --- assembling the source tree and running Sphinx ------------------------------------------

def _write(path:Path, text:str):
    "Write only when the content changed, so that Sphinx rebuilds only what changed"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text: return
    path.write_text(text)

_re_internal = re.compile(r'<a class="reference internal" href="((?:\.\./)*)([^"#]*?)\.html#([^"]+)">(.*?)</a>')

def _retarget_links(pages:dict):
    "Point nbdev's links at the nearest entry the target page has: a method without its own entry at its class; else no link"
    ids = {page: {m.lower() for c in nb['cells'] if c['cell_type'] == 'markdown'
                  for m in re.findall(r'\bid="([^"]+)"', _src(c))} for page, nb in pages.items()}
    def sub(m):
        up, target, anchor, label = m.groups()
        if target not in ids: return label
        while anchor and anchor not in ids[target]: anchor = anchor.rpartition('.')[0]
        return f'<a class="reference internal" href="{up}{target}.html#{anchor}">{label}</a>' if anchor else label
    for nb in pages.values():
        for c in nb['cells']:
            if c['cell_type'] == 'markdown': c['source'] = _re_internal.sub(sub, _src(c))

def _toctree(caption:str, pages:list) -> str:
    return '```{toctree}\n:hidden:\n:caption: ' + caption + '\n\n' + '\n'.join(pages) + '\n```\n'

def assemble() -> dict:
    "Convert `_proc/` into `_site/src/`; returns the pages by kind"
    kinds = {'home': [], 'guide': [], 'api': [], 'tutorials': []}
    written, pages = set(), {}
    for p in sorted(PROC.rglob('*.ipynb')):
        if any(part.startswith(('.', '_')) for part in p.relative_to(PROC).parts): continue
        nb = json.loads(p.read_text())
        front = parse_front(nb['cells'][0]) if nb['cells'] and nb['cells'][0]['cell_type'] == 'raw' else {}
        page = page_name(p, front)
        conv, _ = convert_nb(nb, page)
        src_nb = NBS/p.relative_to(PROC)
        module = module_of(src_nb) if src_nb.exists() else None
        if module:
            extra = constants_md(module, documented_names(conv))
            if extra: conv['cells'].append(_md_cell(extra))
            kinds['api'].append(page)
        elif page == 'index': kinds['home'].append(page)
        elif page.startswith('tutorials/'): kinds['tutorials'].append(page)
        else: kinds['guide'].append(page)
        pages[page] = conv
    _retarget_links(pages)
    if 'index' not in pages: raise SystemExit('nbs/index.ipynb is missing: the site needs a home page')
    trees = _toctree('Guide', kinds['guide'])
    if kinds['tutorials']: trees += _toctree('Tutorials', kinds['tutorials'])
    trees += _toctree('API', kinds['api']) + _toctree('Results', ['results'])
    pages['index']['cells'].append(_md_cell(trees))
    for page, conv in pages.items():
        for j, c in enumerate(conv['cells']): c['id'] = f'c{j:03d}'
        _write(SRC/f'{page}.ipynb', json.dumps(conv, indent=1, ensure_ascii=False) + '\n'); written.add(SRC/f'{page}.ipynb')
    _write(SRC/'results.md', results_md()); written.add(SRC/'results.md')
    kinds['pages'] = pages
    for f in SRC.rglob('*'):
        if f.is_file() and f not in written: f.unlink()
    return kinds

def _nb_markdown(nb:dict) -> str:
    "A plain notebook as markdown: prose, code in fences, text outputs in plain fences"
    out = []
    for c in nb['cells']:
        src = _src(c)
        if c['cell_type'] == 'markdown': out.append(src); continue
        if 'remove-input' not in c['metadata'].get('tags', []) and src.strip(): out.append(f'```python\n{src}\n```')
        for o in c.get('outputs', []):
            t = o.get('text') or o.get('data', {}).get('text/markdown') or o.get('data', {}).get('text/plain')
            if t: out.append('```\n' + (''.join(t) if isinstance(t, list) else t).rstrip('\n') + '\n```')
    return '\n\n'.join(out) + '\n'

def write_markdown_pages(pages:dict):
    "`<page>.html.md` beside each page, as nbdev's Quarto build writes them: the module docstrings link there"
    for page, nb in pages.items(): _write(OUT/f'{page}.html.md', _nb_markdown(nb))

def sphinx(quiet:bool=True) -> None:
    "A fresh Sphinx build (a few seconds): no page of a removed notebook, no sidebar out of date"
    import shutil
    for d in (OUT, DOCTREES): shutil.rmtree(d, ignore_errors=True)
    cmd = [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-b', 'html', '-c', str(ROOT/'docs'),
           '-d', str(DOCTREES), str(SRC), str(OUT)] + (['-q'] if quiet else [])
    subprocess.run(cmd, check=True)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--workers', type=int, default=0, help="processes for nbdev's processing; 0: in this process (fastest: torch is imported once)")
    ap.add_argument('--force', action='store_true', help="ignore the cache of nbdev's processing")
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.force:
        import shutil
        shutil.rmtree(SRC, ignore_errors=True)
    process(args.workers, args.force)
    t1 = time.time()
    kinds = assemble()
    pages = kinds.pop('pages')
    try: sphinx()
    except subprocess.CalledProcessError as e: raise SystemExit(f'sphinx-build failed (exit {e.returncode}): see its messages above')
    write_markdown_pages(pages)
    t2 = time.time()
    n = sum(map(len, kinds.values())) + 1
    print(f"site: {n} pages ({len(kinds['api'])} API, {len(kinds['tutorials'])} tutorials, {len(kinds['guide'])} guide, home, results) "
          f"in {OUT.relative_to(ROOT)}/index.html; notebooks processed in {t1-t0:.0f} s, Sphinx in {t2-t1:.0f} s")

if __name__ == '__main__':
    main()
    # nbdev's processing leaves execnb's shell event-loop thread running, and the interpreter waits ~30 s for it at exit
    sys.stdout.flush(); sys.stderr.flush(); os._exit(0)
