"Weights load from safetensors only; pickle files are refused unless the caller says they are trusted; no remote code; no network."
import ast, os, shutil, subprocess, sys, textwrap
from pathlib import Path
import pandas as pd, pytest, torch
from transformers import BertModel

from fmcombo.backbone import resolve_backbone, load_pretrained, pickle_files
from fmcombo.data import fm_dls
from fmcombo.learner import fm_learner, load_fm_learner, load_backbone

PKG = Path(__file__).resolve().parent.parent/'fmcombo'
DATA = pd.DataFrame(dict(text=['the match ended', 'shares fell', 'a new album', 'rain again'], label=['a', 'b', 'a', 'b']))

@pytest.fixture(scope='module')
def pickled_backbone(tiny, tmp_path_factory):
    "The tiny backbone with its weights as a pickle (pytorch_model.bin) and no safetensors"
    d = tmp_path_factory.mktemp('pickled')/'bb'
    shutil.copytree(tiny, d)
    (d/'model.safetensors').unlink()
    torch.save(BertModel.from_pretrained(tiny).state_dict(), d/'pytorch_model.bin')
    return d

def test_pickle_backbone_refused(pickled_backbone):
    assert pickle_files(pickled_backbone) == ['pytorch_model.bin']
    with pytest.raises(ValueError, match=r"pickle files \['pytorch_model.bin'\].*allow_pickle=True"): resolve_backbone(pickled_backbone)
    with pytest.raises(ValueError, match='pickle files'): load_backbone(pickled_backbone, num_labels=2)
    with pytest.raises(ValueError, match='pickle files'): fm_dls(DATA, backbone=pickled_backbone)

def test_pickle_backbone_with_the_flag(pickled_backbone, tiny):
    m = load_backbone(pickled_backbone, num_labels=2, allow_pickle=True)
    ref = load_backbone(tiny, num_labels=2)
    assert torch.equal(m.backbone.embeddings.word_embeddings.weight, ref.backbone.embeddings.word_embeddings.weight)

def test_safetensors_only_without_the_flag(tiny, tmp_path):
    "A folder whose only weights are a pickle, with the pickle check bypassed, still does not unpickle: transformers is asked for safetensors"
    d = tmp_path/'bb'; shutil.copytree(tiny, d); (d/'model.safetensors').unlink()
    torch.save({}, d/'pytorch_model.bin')
    with pytest.raises(OSError): load_pretrained(BertModel, str(d))

def test_saved_model_with_a_pickle_refused(tiny, tmp_path):
    learn = fm_learner(fm_dls(DATA, backbone=tiny, bs=2, seed=0))
    learn.save_fm(tmp_path/'m')
    (tmp_path/'m'/'extra.pkl').write_bytes(b'\x80\x04N.')
    with pytest.raises(ValueError, match=r"pickle files \['extra.pkl'\]"): load_fm_learner(tmp_path/'m')
    assert load_fm_learner(tmp_path/'m', allow_pickle=True).predict_texts(['a'])[1].shape == (1, 2)   # weights from safetensors

def test_no_remote_code():
    "No call in the library passes trust_remote_code other than False, and load_pretrained refuses it"
    for f in sorted(PKG.glob('*.py')):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == 'trust_remote_code':
                        assert isinstance(kw.value, ast.Constant) and kw.value.value is False, f"{f.name}:{node.lineno} passes trust_remote_code"
            if isinstance(node, ast.Dict):
                assert not any(isinstance(k, ast.Constant) and k.value == 'trust_remote_code' for k in node.keys), f"{f.name}:{node.lineno}"
            if isinstance(node, ast.Attribute) and node.attr == 'load' and isinstance(node.value, ast.Name) and node.value.id in ('torch', 'pickle'):
                pytest.fail(f"{f.name}:{node.lineno} unpickles with {node.value.id}.load")
    with pytest.raises(ValueError, match='trust_remote_code'): load_pretrained(BertModel, 'x', trust_remote_code=True)

NO_NETWORK = textwrap.dedent('''
    import socket
    def refuse(*a, **k): raise AssertionError(f"network access: {a[1:] if len(a) > 1 else a}")
    socket.socket.connect = socket.socket.connect_ex = refuse
    socket.create_connection = socket.getaddrinfo = refuse
    import importlib, pkgutil, sys, tempfile
    from pathlib import Path
    import fmcombo
    for m in pkgutil.iter_modules(fmcombo.__path__): importlib.import_module('fmcombo.' + m.name)
    import pandas as pd
    from fmcombo.data import fm_dls
    from fmcombo.learner import fm_learner, load_fm_learner
    from fmcombo.testing import tiny_backbone
    data = pd.DataFrame(dict(text=['the match ended', 'shares fell', 'a new album', 'rain again'], label=['a', 'b', 'a', 'b']))
    learn = fm_learner(fm_dls(data, backbone=tiny_backbone(), bs=2, seed=0))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-3)
    with tempfile.TemporaryDirectory() as d:
        learn.save_fm(Path(d)/'m')
        print(load_fm_learner(Path(d)/'m').predict_texts(['shares rose'])[0])
''')

def test_no_network(tiny):
    "Import, train, predict, save and load on the tiny backbone with every socket refused and without HF_HUB_OFFLINE"
    env = {k: v for k, v in os.environ.items() if k not in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE')}
    env['OMP_NUM_THREADS'] = '1'
    r = subprocess.run([sys.executable, '-c', NO_NETWORK], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().startswith('[')
