"Two processes launched by torchrun over gloo, each with half of every batch, reach the weights of one process with the whole batch."
import os, socket, subprocess, sys, textwrap
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file

WORKER = textwrap.dedent('''
    import sys, torch
    from torch import nn
    from fastai.callback.core import Callback
    from safetensors.torch import save_file
    from fmcombo.data import load_corpus, sample_per_class, fm_dls
    from fmcombo.learner import fm_learner
    from fmcombo.adversarial import FGM
    from fmcombo.ensemble import train_ensemble
    from fmcombo.distributed import DistributedTrain, is_main_process
    from fmcombo.testing import tiny_backbone
    torch.set_num_threads(1)
    out, tiny = sys.argv[1], tiny_backbone()
    few = sample_per_class(load_corpus('bbc_news')['train'], 4, seed=0)   # 20 texts: batches of 8, 8 and a short 4
    def no_dropout(model):
        for m in model.modules():
            if isinstance(m, nn.Dropout): m.p = 0.
        return model
    class NoDropout(Callback):   # dropout draws differ between one and two processes: off, as the test compares steps
        def before_fit(self): no_dropout(self.learn.model)
    res = {}
    for name, cbs in (('plain', []), ('fgm', [FGM()])):
        learn = fm_learner(fm_dls(few, backbone=tiny, bs=8, seed=0), cbs=cbs + [DistributedTrain()])
        no_dropout(learn.model)
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-3)
        res.update({f'{name}.{k}': v.detach().clone() for k, v in learn.model.state_dict().items()})
    ens = train_ensemble(fm_dls(few, backbone=tiny, bs=8, seed=0), seeds=[3], epochs=2, lr=1e-3,
                         cbs=lambda: [NoDropout(), DistributedTrain()])
    res.update({f'member.{k}': v.detach().clone() for k, v in ens.members[0].model.state_dict().items()})
    if is_main_process(): save_file({k: v.contiguous() for k, v in res.items()}, out)
''')

def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _run(cmd, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', TOKENIZERS_PARALLELISM='false')
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

@pytest.mark.skipif(not torch.distributed.is_available(), reason='torch without distributed support')
def test_two_processes_half_batch_equal_one_process(tmp_path, tiny):
    (tmp_path/'worker.py').write_text(WORKER)
    _run([sys.executable, 'worker.py', str(tmp_path/'one.safetensors')], tmp_path)
    _run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--nnodes=1', '--master_addr=127.0.0.1',
          f'--master_port={_free_port()}', 'worker.py', str(tmp_path/'two.safetensors')], tmp_path)
    one, two = load_file(tmp_path/'one.safetensors'), load_file(tmp_path/'two.safetensors')
    assert one.keys() == two.keys()
    for case in ('plain', 'fgm', 'member'):
        keys = [k for k in one if k.startswith(case + '.') and one[k].is_floating_point()]
        diff = max((one[k] - two[k]).abs().max().item() for k in keys)
        print(f'{case}: max |1 process - 2 processes| = {diff:.2e}')
        assert diff < 1e-5, (case, diff)
