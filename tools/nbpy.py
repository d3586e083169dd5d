"""Round-trip notebooks and percent-format scripts, for editing notebooks as text.

    python tools/nbpy.py py2nb draft.py nbs/00_data.ipynb   # `# %%` code cells, `# %% [markdown]` markdown cells
    python tools/nbpy.py nb2py nbs/00_data.ipynb draft.py

py2nb keeps the outputs of code cells whose source did not change, so a re-written
notebook does not lose the outputs of cells that really ran. The notebooks stay the source.
"""
import hashlib, json, sys
from pathlib import Path

def _split(text):
    cells, kind, buf = [], None, []
    def flush():
        if kind is None: return
        src = '\n'.join(buf).strip('\n')
        if kind == 'markdown': src = '\n'.join(l[2:] if l.startswith('# ') else l.lstrip('#') for l in src.splitlines())
        cells.append((kind, src))
    for line in text.splitlines():
        if line.startswith('# %%'):
            flush(); kind, buf = ('markdown' if '[markdown]' in line else 'code'), []
        else: buf.append(line)
    flush()
    return cells

def py2nb(src, dst):
    dst = Path(dst)
    old, ids = {}, {}
    if dst.exists():
        for c in json.loads(dst.read_text())['cells']:
            if c['cell_type'] == 'code': old[''.join(c['source'])] = c.get('outputs', [])
            if 'id' in c: ids.setdefault((c['cell_type'], ''.join(c['source'])), c['id'])
    cells = []
    for kind, s in _split(Path(src).read_text()):
        cid = ids.get((kind, s)) or hashlib.sha1(f'{dst.name}|{len(cells)}|{s}'.encode()).hexdigest()[:8]
        c = dict(cell_type=kind, id=cid, metadata={}, source=s.splitlines(True))
        if kind == 'code': c.update(execution_count=None, outputs=old.get(s, []))
        cells.append(c)
    nb = dict(cells=cells, metadata=dict(kernelspec=dict(display_name='python3', language='python', name='python3')),
              nbformat=4, nbformat_minor=5)  # cell ids need 4.5
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')

def nb2py(src, dst):
    out = []
    for c in json.loads(Path(src).read_text())['cells']:
        s = ''.join(c['source'])
        if c['cell_type'] == 'markdown': out += ['# %% [markdown]'] + [('# ' + l) if l else '#' for l in s.splitlines()]
        else: out += ['# %%', s]
        out.append('')
    Path(dst).write_text('\n'.join(out))

if __name__ == '__main__':
    cmd, a, b = sys.argv[1:4]
    {'py2nb': py2nb, 'nb2py': nb2py}[cmd](a, b)
