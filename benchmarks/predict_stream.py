"""Peak memory of streaming prediction against file size: `FMLearner.predict_file` reads a text file in chunks,
predicts them and writes each chunk's rows before it reads the next, so memory should not grow with the file.

    python benchmarks/predict_stream.py                      # 10k, 30k and 100k lines, the tiny backbone; a few minutes
    python benchmarks/predict_stream.py --lines 10000 100000 --backbone default

Each size runs in a fresh process (peak RSS from `resource.getrusage`, which never goes down, is per process):
it loads a saved model, records its RSS, streams the file into a CSV and records the peak RSS and, with tracemalloc,
(with --trace) the peak of Python-level allocations during the prediction. For contrast, the same file read whole into a list first
(`predict_texts(path.read_text().splitlines())`) is measured too. Writes benchmarks/results/predict_stream.json.
"""
import argparse, json, os, platform, resource, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = r'''
import json, resource, sys, time, tracemalloc
from pathlib import Path
import torch
torch.set_num_threads(1)
from fmcombo.learner import load_fm_learner
mode, model, src, dest, trace = sys.argv[1:6]
learn = load_fm_learner(model)
learn.predict_texts(['warm up'])
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if trace == '1': tracemalloc.start()
t = time.perf_counter()
if mode == 'stream': n = learn.predict_file(src, dest, bs=64, progress=False)
else:
    texts = [l for l in Path(src).read_text(encoding='utf-8').splitlines() if l.strip()]
    n = len(learn.predict_texts(texts, bs=64)[0])
secs = time.perf_counter() - t
py_peak = tracemalloc.get_traced_memory()[1] if trace == '1' else 0
tracemalloc.stop()
print(json.dumps(dict(n=n, seconds=round(secs, 1), rss_before_mb=round(rss0/1024, 1),
                      rss_peak_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024, 1), python_peak_mb=round(py_peak/2**20, 2) if trace == '1' else None)))
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

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--lines', type=int, nargs='+', default=[10_000, 30_000, 100_000])
    ap.add_argument('--backbone', choices=['tiny', 'default'], default='tiny')
    ap.add_argument('--whole-list-max', type=int, default=30_000, help='the read-it-all contrast only up to this many lines')
    ap.add_argument('--trace', action='store_true', help='also the peak of Python allocations (tracemalloc; slower)')
    ap.add_argument('--out', default=str(HERE/'results'/'predict_stream.json'))
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS='1', TOKENIZERS_PARALLELISM='false')
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); model = _model(a.backbone, d)
        for n in a.lines:
            src = d/f'{n}.txt'; _texts(n, src)
            for mode in ('stream', 'whole-list') if n <= a.whole_list_max else ('stream',):
                r = subprocess.run([sys.executable, '-c', CHILD, mode, str(model), str(src), str(d/'out.csv'), '1' if a.trace else '0'],
                                   capture_output=True, text=True, env=env)
                if r.returncode: sys.exit(r.stderr[-3000:])
                row = dict(lines=n, file_mb=round(src.stat().st_size/2**20, 2), mode=mode, **json.loads(r.stdout.strip().splitlines()[-1]))
                row['rss_growth_mb'] = round(row['rss_peak_mb'] - row['rss_before_mb'], 1)
                print(row, flush=True); rows.append(row)
    res = dict(backbone=a.backbone, bs=64, chunk=1024, torch_threads=1, machine=platform.machine(), python=platform.python_version(),
               command=' '.join(['python', 'benchmarks/predict_stream.py'] + sys.argv[1:]), rows=rows)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + '\n')
    print(f'wrote {a.out}')

if __name__ == '__main__': main()
