"""Peak memory of streaming prediction against file size: `FMLearner.predict_file` reads a text file in chunks,
predicts them and writes each chunk's rows before it reads the next, so its memory should not grow with the file.

    OMP_NUM_THREADS=1 python benchmarks/predict_stream.py     # 10k, 30k, 100k, 300k lines, the tiny backbone; ~15 minutes
    OMP_NUM_THREADS=1 python benchmarks/predict_stream.py --lines 10000 30000 100000 300000 1000000   # the committed results; ~70 minutes on 2 busy cores
    python benchmarks/predict_stream.py --lines 10000 100000 --whole-list-max 100000 --backbone default

Every row (a file size × a mode) runs in fresh processes, so rows are independent: one process measures RSS, another
the Python heap. Each loads a saved model, predicts one text (lazy initialisation out of the way), then:
- RSS: records the resident set size (VmRSS), resets the kernel's high-water mark (`/proc/self/clear_refs`, Linux),
  predicts and reads the high-water mark (VmHWM) back: `rss_growth_mb` is the peak during prediction minus the RSS
  before it, whatever loading the model cost. Without the reset (not Linux) the peak is `ru_maxrss`, loading included.
- Python heap: `tracemalloc` (started just before the prediction) gives the peak of Python-level allocations
  (strings, lists, numpy arrays; not torch tensors) — in a process of its own, as tracing adds memory and time.
Modes: `stream` is `predict_file(src, dest)`; `whole-list` is what one does without it: read the file into a list,
`predict_texts` it and write the CSV with pandas (what `fmcombo predict --file` did before streaming).
The input lines are cut from the BBC articles, 5 to 80 words each. Writes benchmarks/results/predict_stream.json after
every row.
"""
import argparse, json, os, platform, subprocess, sys, tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = r'''
import gc, json, re, resource, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
import pandas as pd
from fmcombo.learner import load_fm_learner
mode, model, src, dest, what = sys.argv[1:6]
def status(key): return int(re.search(rf'^{key}:\s+(\d+) kB', Path('/proc/self/status').read_text(), re.M).group(1)) / 1024
learn = load_fm_learner(model)
learn.predict_texts(['warm up'])
gc.collect()
try: Path('/proc/self/clear_refs').write_text('5'); reset = True   # VmHWM := VmRSS
except OSError: reset = False
rss0 = status('VmRSS') if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if what == 'heap': import tracemalloc; tracemalloc.start()
t = time.perf_counter()
if mode == 'stream': n = learn.predict_file(src, dest, bs=64, progress=False)
else:
    texts = [l for l in Path(src).read_text(encoding='utf-8').splitlines() if l.strip()]
    labels, probs = learn.predict_texts(texts, bs=64)
    pd.DataFrame({'text': texts, 'label': labels, 'probability': probs.max(1).round(4)}).to_csv(dest, index=False)
    n = len(labels)
secs = time.perf_counter() - t
if what == 'heap': print(json.dumps(dict(n=n, python_peak_mb=round(tracemalloc.get_traced_memory()[1] / 2**20, 2))))
else:
    peak = status('VmHWM') if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(n=n, seconds=round(secs, 1), rss_before_mb=round(rss0, 1), rss_peak_mb=round(peak, 1), hwm_reset=reset)))
'''

def _model(backbone:str, d:Path) -> Path:
    from fmcombo.data import load_corpus, sample_per_class, fm_dls
    from fmcombo.learner import fm_learner
    from fmcombo.testing import tiny_backbone
    few = sample_per_class(load_corpus('bbc_news')['train'], 4, seed=0)
    learn = fm_learner(fm_dls(few, backbone=tiny_backbone() if backbone == 'tiny' else None, bs=8, seed=0))
    learn.save_fm(d/'model')
    return d/'model'

def _texts(n:int, src:Path):
    "n lines cut from the BBC articles: 5 to 80 words each"
    from fmcombo.data import load_corpus
    words = ' '.join(load_corpus('bbc_news')['train']['text']).split()
    with open(src, 'w', encoding='utf-8') as f:
        for i in range(n):
            k = 5 + (i*37) % 76; s = (i*7919) % (len(words) - k)
            f.write(' '.join(words[s:s+k]) + '\n')

def _child(mode:str, what:str, model:Path, src:Path, dest:Path, env:dict) -> dict:
    r = subprocess.run([sys.executable, '-c', CHILD, mode, str(model), str(src), str(dest), what], capture_output=True, text=True, env=env)
    if r.returncode: sys.exit(f"{mode} {what} on {src.name} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--lines', type=int, nargs='+', default=[10_000, 30_000, 100_000, 300_000])
    ap.add_argument('--backbone', choices=['tiny', 'default'], default='tiny')
    ap.add_argument('--whole-list-max', type=int, default=100_000, help='the read-it-all contrast only up to this many lines')
    ap.add_argument('--out', default=str(HERE/'results'/'predict_stream.json'))
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS='1', TOKENIZERS_PARALLELISM='false')
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    res = dict(backbone=a.backbone, bs=64, chunk=1024, torch_threads=1, machine=platform.machine(), python=platform.python_version(),
               command=' '.join(['OMP_NUM_THREADS=1 python', 'benchmarks/predict_stream.py'] + sys.argv[1:]),
               note='each row in fresh processes; rss_growth_mb = peak RSS during the prediction (VmHWM after a reset) minus '
                    'the RSS before it; python_peak_mb = peak of Python allocations during it (tracemalloc, its own process)',
               rows=[])
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); model = _model(a.backbone, d)
        for n in a.lines:
            src = d/f'{n}.txt'; _texts(n, src)
            for mode in ('stream', 'whole-list') if n <= a.whole_list_max else ('stream',):
                row = dict(lines=n, file_mb=round(src.stat().st_size/2**20, 2), mode=mode, **_child(mode, 'rss', model, src, d/'out.csv', env))
                row['rss_growth_mb'] = round(row['rss_peak_mb'] - row['rss_before_mb'], 1)
                row['python_peak_mb'] = _child(mode, 'heap', model, src, d/'out.csv', env)['python_peak_mb']
                print(row, flush=True); res['rows'].append(row)
                tmp = out.with_suffix('.tmp'); tmp.write_text(json.dumps(res, indent=2) + '\n'); tmp.replace(out)
            src.unlink()
    print(f'wrote {out}')

if __name__ == '__main__': main()
