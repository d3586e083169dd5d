"""Run a command and fail if it changed any file under fmcombo/, nbs/ or README.md.

    python tools/check_unchanged.py -- nbdev-export

CI uses it to check that the exported modules, the cleaned notebooks and the README
are what the notebooks say. It compares file contents before and after, so it works
in a clean clone and in a working tree with uncommitted edits alike.
"""
import hashlib, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WATCH = ['fmcombo', 'nbs', 'README.md']

def snapshot():
    res = {}
    for w in WATCH:
        p = ROOT/w
        files = [p] if p.is_file() else [f for f in p.rglob('*') if f.is_file() and '__pycache__' not in f.parts and '.ipynb_checkpoints' not in f.parts]
        for f in files: res[str(f.relative_to(ROOT))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return res

if __name__ == '__main__':
    cmd = sys.argv[sys.argv.index('--')+1:] if '--' in sys.argv else sys.argv[1:]
    before = snapshot()
    subprocess.run(cmd, cwd=ROOT, check=True)
    after = snapshot()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        print(f"`{' '.join(cmd)}` changed {len(changed)} file(s); run `make export` and commit:", *changed, sep='\n  ')
        sys.exit(1)
    print(f"`{' '.join(Path(cmd[0]).name for _ in [0])} {' '.join(cmd[1:])}` changed nothing")
