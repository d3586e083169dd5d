"""A fit interrupted after an epoch and resumed from its checkpoint (FitCheckpoint) ends with the weights of an
uninterrupted fit, on the CPU: weights, optimizer state, schedule position and random states all come back."""
import json, os, subprocess, sys, textwrap
from pathlib import Path
import pytest, torch
from fastai.callback.core import Callback
from safetensors.torch import load_file, save_file

from fmcombo.augment import CharNoise
from fmcombo.data import fm_dls
from fmcombo.learner import fm_learner, FitCheckpoint

EPOCHS = 4

class Interrupt(Callback):
    "Raise `exc` at `event` of epoch `epoch` (after the checkpoint of that epoch when the event is after_epoch)"
    order = FitCheckpoint.order + 1
    def __init__(self, exc, epoch, event='after_epoch'):
        self.exc, self.stop, self.in_batch = exc, epoch, event == 'after_batch'
        setattr(self, event, self._maybe)
    def _maybe(self):
        if self.epoch == self.stop and (self.learn.training or not self.in_batch): raise self.exc

def _learner(tiny, few):
    # dropout on, a text transform with its own generator, shuffled batches: every random state matters
    return fm_learner(fm_dls(few, backbone=tiny, bs=8, seed=0, text_tfms=[CharNoise(p=0.3)]))

def _fit(learn, ckpt, *cbs):
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(EPOCHS, 1e-3, cbs=[FitCheckpoint(ckpt, resume=True), *cbs])
    return torch.cat([p.detach().flatten() for p in learn.model.parameters()])

@pytest.fixture(scope='module')
def straight(tiny, few, tmp_path_factory):
    torch.set_num_threads(1)
    return _fit(_learner(tiny, few), tmp_path_factory.mktemp('straight')/'ck')

@pytest.mark.parametrize('exc,event', [(KeyboardInterrupt, 'after_epoch'), (RuntimeError('crash'), 'after_batch')], ids=['ctrl-c-after-epoch-1', 'crash-inside-epoch-2'])
def test_resume_gives_the_uninterrupted_weights(exc, event, straight, tiny, few, tmp_path):
    ck = tmp_path/'ck'
    with pytest.raises(type(exc) if isinstance(exc, BaseException) else exc): _fit(_learner(tiny, few), ck, Interrupt(exc, 1 if event == 'after_epoch' else 2, event))
    assert json.loads((ck/'fit.json').read_text())['epoch'] == 1
    resumed = _fit(_learner(tiny, few), ck)
    diff = (resumed - straight).abs().max().item()
    print(f'max |resumed - uninterrupted| = {diff:.2e}')
    assert diff <= 1e-6
    assert sorted(p.name for p in ck.iterdir()) == ['fit.json', 'model.safetensors', 'optimizer.safetensors', 'rng.safetensors']
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]

def test_resume_other_fit_refused(tiny, few, tmp_path):
    ck = tmp_path/'ck'
    with pytest.raises(KeyboardInterrupt): _fit(_learner(tiny, few), ck, Interrupt(KeyboardInterrupt, 0))
    learn = _learner(tiny, few)
    with pytest.raises(ValueError, match='fit of 4 epochs; this fit has n_epoch=2'):
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-3, cbs=FitCheckpoint(ck, resume=True))

RESUME = textwrap.dedent('''
    import sys, torch, pandas as pd
    from safetensors.torch import save_file
    from fmcombo.augment import CharNoise
    from fmcombo.data import fm_dls
    from fmcombo.learner import fm_learner, FitCheckpoint
    from fmcombo.testing import tiny_backbone
    torch.set_num_threads(1)
    few = pd.read_csv(sys.argv[1])
    learn = fm_learner(fm_dls(few, backbone=tiny_backbone(), bs=8, seed=0, text_tfms=[CharNoise(p=0.3)]))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(4, 1e-3, cbs=[FitCheckpoint(sys.argv[2], resume=True)])
    save_file({'w': torch.cat([p.detach().flatten() for p in learn.model.parameters()])}, sys.argv[3])
''')

def test_resume_in_a_new_process(straight, tiny, few, tmp_path):
    "The checkpoint of a killed process is resumed by another one"
    few.to_pandas().assign(label=[few.features['label'].names[i] for i in few['label']]).to_csv(tmp_path/'few.csv', index=False)
    ck = tmp_path/'ck'
    with pytest.raises(KeyboardInterrupt): _fit(_learner(tiny, few), ck, Interrupt(KeyboardInterrupt, 1))
    r = subprocess.run([sys.executable, '-c', RESUME, str(tmp_path/'few.csv'), str(ck), str(tmp_path/'w.safetensors')],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr[-3000:]
    diff = (load_file(tmp_path/'w.safetensors')['w'] - straight).abs().max().item()
    print(f'max |resumed in a new process - uninterrupted| = {diff:.2e}')
    assert diff <= 1e-6
