"""Committed notebook outputs and the README are what readers see: no console progress text, ANSI
escapes, transformers load reports, "Loading weights"/"Writing model shards" bars, warnings or errors.

A notebook listed in DIRTY is known to fail and is marked xfail (not strict) until it is
re-executed with clean output; remove it from the list once it passes.
"""
import json, re, subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHECKS = {
    'a carriage-return progress line': re.compile(r'\r(?!\n)'),
    'console progress-bar text': re.compile(r'\d+(?:\.\d+)?% ?\[\d+/\d+|\d+%\|[#█ ]|\|[█-]{10,}\|'),
    'an ANSI escape': re.compile(r'\x1b\['),
    "a transformers load report": re.compile(r'LOAD REPORT|Some weights of|were not initialized from the model|newly initialized|You should probably TRAIN'),
    'a "Loading weights"/"Writing model shards" bar': re.compile(r'Loading weights|Writing model shards'),
    'a warning': re.compile(r'\b\w*Warning: |\bwarnings?\.warn\(|(?<![\w.])warn\("'),
}

# Known to fail on the day this test was written; each to be re-executed with clean output (see its reason).
DIRTY = {
}

def problems(text:str) -> list:
    "What is wrong with `text` as a reader-facing output"
    return [what for what, pat in CHECKS.items() if pat.search(text)]

def _texts(output:dict):
    "(mime type, text) of each text an output shows; a stream is 'text/plain'"
    if 'text' in output: yield 'text/plain', ''.join(output['text']) if isinstance(output['text'], list) else output['text']
    for mime, v in output.get('data', {}).items():
        if mime.startswith('text/'): yield mime, ''.join(v) if isinstance(v, list) else v

# HTML folds every whitespace character into a space, so a carriage return there is part of the data shown (a tweet's line
# break in a table), not a redrawn progress line
NOT_IN_HTML = {'a carriage-return progress line'}

def notebook_problems(path:Path) -> list:
    "'cell N: problem: excerpt' for each output of the notebook at `path` that fails a check"
    out = []
    for i, cell in enumerate(json.loads(path.read_text(encoding='utf-8'))['cells']):
        for o in cell.get('outputs', []):
            if o.get('output_type') == 'error':
                out.append(f"cell {i}: an error output: {o.get('ename')}: {o.get('evalue', '')[:80]}"); continue
            for mime, t in _texts(o):
                for what in problems(t):
                    if mime == 'text/html' and what in NOT_IN_HTML: continue
                    m = CHECKS[what].search(t)
                    out.append(f"cell {i} ({o.get('name') or o.get('output_type')}): {what}: {t[max(0, m.start()-40):m.end()+40]!r}")
    return out

def _notebooks() -> list:
    "Every committed notebook (tracked by git), else every notebook under nbs/"
    try:
        r = subprocess.run(['git', 'ls-files', '*.ipynb'], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
        files = [f for f in r.stdout.split() if (ROOT/f).exists()]
    except (OSError, subprocess.SubprocessError): files = []
    return sorted(files) or sorted(p.relative_to(ROOT).as_posix() for p in (ROOT/'nbs').rglob('*.ipynb')
                                   if '.ipynb_checkpoints' not in p.parts)

def _param(name:str):
    marks = [pytest.mark.xfail(strict=False, reason=f'outputs to re-execute: {DIRTY[name]}')] if name in DIRTY else []
    return pytest.param(name, marks=marks, id=name)

@pytest.mark.parametrize('nb', [_param(f) for f in _notebooks()])
def test_notebook_outputs_are_clean(nb):
    found = notebook_problems(ROOT/nb)
    assert not found, f'{nb}:\n' + '\n'.join(found)

@pytest.mark.parametrize('name', [_param('README.md')])
def test_readme_is_clean(name):
    text = (ROOT/name).read_text(encoding='utf-8')
    found = [f'{what}: {text[max(0, m.start()-40):m.end()+40]!r}' for what in problems(text)
             for m in [CHECKS[what].search(text)]]
    assert not found, f'{name}:\n' + '\n'.join(found)

def test_checks_catch_what_they_should():
    "Each check fires on a sample of what it is for, and not on ordinary output"
    samples = {
        'a carriage-return progress line': 'Epoch 1/2\rEpoch 2/2',
        'console progress-bar text': 'Epoch 1/1 : |████████████████████| 100.00% [3/3 00:00<00:00]',
        'an ANSI escape': '[transformers] \x1b[1mBertModel\x1b[0m',
        'a transformers load report': 'BertModel LOAD REPORT from: /tmp/x',
        'a "Loading weights"/"Writing model shards" bar': 'Loading weights: 100%|##########| 39/39',
        'a warning': "/x/torch/jit/_script.py:1491: FutureWarning: `torch.jit.script` is deprecated.",
    }
    for what, text in samples.items(): assert what in problems(text), (what, problems(text))
    assert problems('epoch  train_loss  valid_loss  accuracy\n0  1.63  1.61  0.24\n') == []
    assert problems('accuracy 93.2% (397/426)\n') == []

def test_carriage_return_is_data_only_in_html(tmp_path):
    "A carriage return inside HTML (a tweet in a table) is data; in a stream or plain text it is a redrawn progress line"
    cell = lambda o: dict(cell_type='code', source='', metadata={}, execution_count=None, outputs=[o])
    html = dict(output_type='execute_result', metadata={}, execution_count=1, data={'text/html': '<td>line\rbreak</td>'})
    stream = dict(output_type='stream', name='stdout', text='Epoch 1/2\rEpoch 2/2')
    plain = dict(output_type='execute_result', metadata={}, execution_count=1, data={'text/plain': 'line\rbreak'})
    nb = tmp_path/'x.ipynb'
    nb.write_text(json.dumps(dict(cells=[cell(html), cell(stream), cell(plain)], metadata={}, nbformat=4, nbformat_minor=5)))
    found = notebook_problems(nb)
    assert not any(f.startswith('cell 0') for f in found), found
    assert any(f.startswith('cell 1') and 'carriage-return' in f for f in found), found
    assert any(f.startswith('cell 2') and 'carriage-return' in f for f in found), found
