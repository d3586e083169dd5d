"""Execute notebooks in place, every cell (slow ones too), and keep their outputs, as Jupyter would show them.

    python tools/run_nb.py nbs/03_edits.ipynb [more.ipynb ...]

The notebooks run in execnb's IPython shell from their own folder. Outside Jupyter, fastprogress
would draw console bars (carriage-return text) into the outputs; the runner gives fastai and
fmcombo fastprogress's notebook bars instead, and keeps the last state of each display, so a committed
output holds fastai's results table as a reader sees it in Jupyter. Then run `nbdev-clean`.
"""
import os, sys, time, warnings
from pathlib import Path

def notebook_bars():
    "fastprogress's notebook bars wherever fastai and fmcombo draw progress"
    import importlib, pkgutil
    import fastprogress.fastprogress as fpp, fastai.callback.progress as fcp, fmcombo
    fcp.master_bar, fcp.progress_bar = fpp.NBMasterBar, fpp.NBProgressBar
    # a notebook's own `from fastprogress.fastprogress import progress_bar` (module notebooks define their functions with it)
    import fastprogress
    fpp.master_bar, fpp.progress_bar = fastprogress.master_bar, fastprogress.progress_bar = fpp.NBMasterBar, fpp.NBProgressBar
    for m in pkgutil.iter_modules(fmcombo.__path__):
        mod = importlib.import_module(f'fmcombo.{m.name}')
        if hasattr(mod, 'progress_bar'): mod.progress_bar = fpp.NBProgressBar
        if hasattr(mod, 'master_bar'): mod.master_bar = fpp.NBMasterBar

def _bar_state(o) -> bool:
    "An intermediate state of a notebook progress bar (or its style sheet): Jupyter replaces these in place, execnb appends them"
    html = ''.join(o.get('data', {}).get('text/html', [])) if o.get('output_type') == 'display_data' else ''
    return '<progress' in html or html.lstrip().startswith('<style>') and 'progress' in html or html_empty(o)

def html_empty(o) -> bool:
    "A display of empty HTML (a finished bar that cleared itself), which Jupyter shows as nothing"
    data = o.get('data', {}) if o.get('output_type') == 'display_data' else {}
    return 'text/html' in data and not ''.join(data['text/html']).strip() and set(data) <= {'text/html', 'text/plain'}

def piped_system(sh):
    "`!cmd` as Jupyter runs it: in a subprocess whose output is a pipe (ipykernel's way), not the pseudo-terminal of plain IPython, where a command sees a terminal and draws its progress bars"
    import subprocess
    def system(cmd:str):
        r = subprocess.run(sh.var_expand(cmd, depth=1), shell=True, capture_output=True, text=True)
        print(r.stdout, end=''); print(r.stderr, end='', file=sys.stderr)
        sh.user_ns['_exit_code'] = r.returncode
    return system

def run(path:Path):
    from fastcore.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    nb = read_nb(path)
    cwd = os.getcwd(); os.chdir(path.parent)
    try:
        sh = CaptureShell()
        sh.system = piped_system(sh)
        sh.run('import os; os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")')
        t0 = time.perf_counter()
        sh.run_all(nb, exc_stop=True)
    finally: os.chdir(cwd)
    for c in nb.cells: c.outputs = [o for o in c.get('outputs', []) if not _bar_state(o)]
    write_nb(nb, path)
    print(f'{path}: executed in {time.perf_counter()-t0:.0f} s')

if __name__ == '__main__':
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)  # fastai's import, in this process only
    notebook_bars()
    for p in sys.argv[1:]: run(Path(p).resolve())
