"The code that computes each technique gives the same final weights as the recorded run (`tests/fingerprints.py --record`)."
import json, pytest
import numpy as np
from fingerprints import FILE, all_fingerprints

@pytest.fixture(scope='module')
def now(): return all_fingerprints()

@pytest.mark.parametrize('name', sorted(json.loads(FILE.read_text())))
def test_same_final_weights(name, now):
    want = json.loads(FILE.read_text())[name]
    np.testing.assert_allclose(now[name], want, rtol=1e-5, atol=1e-7, err_msg=f'{name}: the final weights changed')
