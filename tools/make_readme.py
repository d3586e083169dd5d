"""Write README.md from nbs/index.ipynb (nbdev-readme needs Quarto, which cannot be installed here).

Markdown cells are copied, code cells become ```python blocks (cells marked `#| hide`
are left out, cells marked `#| echo: false` show their outputs only, nbdev directives are dropped),
and text outputs follow their cell.
"""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _md_table(html:str) -> str:
    "A Markdown table from an HTML table such as fastai's results table"
    cell = lambda row, tag: [re.sub(r'<[^>]+>', '', c).strip() for c in re.findall(rf'<{tag}[^>]*>(.*?)</{tag}>', row, re.S)]
    rows = re.findall(r'<tr[^>]*>(.*?)</tr>', html, re.S)
    head, body = cell(rows[0], 'th'), [cell(r, 'td') for r in rows[1:]]
    return '\n'.join(['| ' + ' | '.join(head) + ' |', '|' + '---|'*len(head)] + ['| ' + ' | '.join(r) + ' |' for r in body])

def _text(out):
    if out['output_type'] == 'stream': return ''.join(out['text'])
    data = out.get('data', {})
    html = ''.join(data.get('text/html', []))
    if '<table' in html and '<tr' in html: return ('md', _md_table(html))
    if 'text/markdown' in data: return ('md', ''.join(data['text/markdown']))
    if 'text/plain' in data: return ''.join(data['text/plain'])
    return None

def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text())
    parts = ['<!-- WARNING: generated from nbs/index.ipynb by tools/make_readme.py; edit the notebook, then run `make export` -->']
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown':
            src = re.sub(r'^# (.+)\n\n> (.+)', r'# \1\n\n> \2', src)
            parts.append(src.strip()); continue
        lines = src.splitlines()
        if any(re.match(r'#\|\s*(hide|exporti?)\b', l) for l in lines): continue
        code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        echo = not any(re.match(r'#\|\s*echo:\s*false\b', l) for l in lines)
        if code and echo: parts.append(f'```python\n{code}\n```')
        for out in c.get('outputs', []):
            t = _text(out)
            if t is None: continue
            if isinstance(t, tuple): parts.append(t[1].strip())
            elif t.strip(): parts.append('    ' + t.strip().replace('\n', '\n    '))
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    (ROOT/'README.md').write_text(render())
