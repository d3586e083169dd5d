"The `fmcombo` command end to end (tiny backbone)."
import subprocess, sys
from pathlib import Path
FMCOMBO = str(Path(sys.executable).parent/'fmcombo')

def test_demo_runs_end_to_end(tiny):
    out = subprocess.run([FMCOMBO, 'demo', '--backbone', tiny, '--n', '4', '--epochs', '1'],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert 'test accuracy:' in out.stdout and 'some test predictions' in out.stdout

def test_demo_bad_input(tiny):
    out = subprocess.run([FMCOMBO, 'demo', '--backbone', tiny, '--n', '1000'], capture_output=True, text=True, timeout=600)
    assert out.returncode != 0 and 'has only' in out.stderr
