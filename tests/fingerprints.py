"""Fingerprints of the final weights of a fixed tiny-backbone run of each technique.

    python tests/fingerprints.py --record   # writes tests/fingerprints.json (done once, on the code before a refactor)

`tests/test_fingerprints.py` reruns each run and compares: a refactor that changes what a
callback computes changes its fingerprint. A change of the tiny backbone itself (its version in
`fmcombo.testing`) needs a new recording: make it with the recording commit's code on the new
backbone, and check that the code of the day gives the same. The runs are short (one epoch of 16 texts) but go
through every event of each callback: dropout on, mixed batches, the full loss plumbing.
"""
import json, sys
from pathlib import Path
import numpy as np, pandas as pd, torch

HERE = Path(__file__).parent
FILE = HERE/'fingerprints.json'

def _data():
    from fmcombo.data import load_corpus, sample_per_class
    few = sample_per_class(load_corpus('bbc_news')['train'], 4, seed=0)
    tr = few.select(range(16))
    return pd.DataFrame(dict(text=[' '.join(t.split()[:6 + 3*i]) for i, t in enumerate(tr['text'])], label=tr['label']))

def _runs():
    "name -> (text_tfms, callbacks factory, epochs)"
    from fmcombo.augment import EDA, AEDA, CharNoise, EmbedMix, TMix, NEFTune, RDrop
    from fmcombo.adversarial import FGM, PGD, FreeLB, SMART, AWP
    from fmcombo.ensemble import SnapshotEnsemble, SWA
    return {
        'plain': ([], lambda: [], 2),
        'EDA': ([EDA()], lambda: [], 2), 'AEDA': ([AEDA()], lambda: [], 2), 'CharNoise': ([CharNoise()], lambda: [], 2),
        'EmbedMix': ([], lambda: [EmbedMix()], 2), 'TMix': ([], lambda: [TMix()], 2),
        'NEFTune': ([], lambda: [NEFTune()], 2), 'RDrop': ([], lambda: [RDrop()], 2),
        'FGM': ([], lambda: [FGM()], 2), 'PGD': ([], lambda: [PGD()], 2), 'FreeLB': ([], lambda: [FreeLB()], 2),
        'SMART': ([], lambda: [SMART()], 2), 'AWP': ([], lambda: [AWP(start_epoch=0)], 2),
        'SnapshotEnsemble': ([], lambda: [SnapshotEnsemble(2)], 2), 'SWA': ([], lambda: [SWA(start_epoch=1)], 3),
    }

def fingerprint(model) -> list:
    "Per-parameter sum and sum of squares, in float64"
    out = []
    for _, p in sorted(model.state_dict().items()):
        if not p.is_floating_point(): continue
        p = p.detach().double()
        out += [p.sum().item(), (p*p).sum().item()]
    return out

def train(name, tiny, data):
    "The model after the fixed run `name`"
    from fmcombo.data import fm_dls
    from fmcombo.learner import fm_learner
    tfms, cbs, epochs = _runs()[name]
    torch.manual_seed(0)
    learn = fm_learner(fm_dls(data, backbone=tiny, bs=8, max_len=64, seed=0, text_tfms=tfms or None), cbs=cbs())
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 1e-3)
    return learn.model

def train_distill(tiny, data):
    "The student after the fixed Distill run"
    from fmcombo.data import fm_dls
    from fmcombo.learner import fm_learner
    from fmcombo.ensemble import Ensemble, Distill
    teacher = fm_learner(fm_dls(data, backbone=tiny, bs=8, max_len=64, seed=1))
    with teacher.no_bar(), teacher.no_logging(): teacher.fit_one_cycle(1, 1e-3)
    learn = fm_learner(fm_dls(data, backbone=tiny, bs=8, max_len=64, seed=0), cbs=[Distill(Ensemble([teacher]))])
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-3)
    return learn.model

def all_fingerprints():
    torch.set_num_threads(1)
    from fmcombo.testing import tiny_backbone
    tiny, data = tiny_backbone(), _data()
    res = {name: fingerprint(train(name, tiny, data)) for name in _runs()}
    res['Distill'] = fingerprint(train_distill(tiny, data))
    return res

if __name__ == '__main__':
    if '--record' not in sys.argv: sys.exit(__doc__)
    FILE.write_text(json.dumps(all_fingerprints(), indent=0) + '\n')
    print(f'wrote {FILE}')
