"The package is a strict stack of layers: no import circle, no private name crossing modules, imports at module level, no global side effect."
import ast, subprocess, sys
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parent.parent/'fmcombo'
# imports allowed inside a function: optional heavy dependencies the library works without
OPTIONAL = {'IPython', 'nltk'}
# the console script's launcher sets a warning filter in its own process, then imports the command line
LAUNCHER = ('launch', 'fmcombo.cli')
# each module and the fmcombo modules it may import (the layer diagram of the design page)
LAYERS = ['backbone', 'edits', 'data', 'learner', 'distributed', 'perturb',
          {'augment', 'adversarial', 'transfer', 'ensemble', 'multitask'}, 'robustness', 'experiment', 'cli', 'launch']

def modules(): return sorted(p.stem for p in PKG.glob('*.py') if p.stem not in ('__init__', '_modidx'))

def imports(name):
    "(module imported, names imported, inside a function?) for every import in fmcombo/`name`.py"
    tree = ast.parse((PKG/f'{name}.py').read_text())
    out = []
    def walk(node, in_fn):
        for c in ast.iter_child_nodes(node):
            fn = in_fn or isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(c, ast.Import): out.extend((a.name, [], fn) for a in c.names)
            elif isinstance(c, ast.ImportFrom):
                mod = ('fmcombo.' if c.level else '') + (c.module or '')
                out.append((mod.rstrip('.'), [a.name for a in c.names], fn))
            walk(c, fn)
    walk(tree, False)
    return out

def ours(mod): return mod.split('.')[1] if mod.startswith('fmcombo.') else None

def graph(): return {m: sorted({ours(i) for i, _, _ in imports(m) if ours(i)}) for m in modules()}

def level(m):
    for i, l in enumerate(LAYERS):
        if m == l or (isinstance(l, set) and m in l): return i
    return None

def test_no_import_circle():
    g, state = graph(), {}
    def visit(m, path):
        if state.get(m) == 'done': return
        assert state.get(m) != 'open', f"import circle: {' -> '.join(path + [m])}"
        state[m] = 'open'
        for n in g[m]: visit(n, path + [m])
        state[m] = 'done'
    for m in g: visit(m, [])

@pytest.mark.parametrize('name', modules())
def test_imports_at_module_level_and_public(name):
    for mod, names, in_fn in imports(name):
        if (name, mod) == LAUNCHER: continue
        assert not in_fn or mod.split('.')[0] in OPTIONAL, f"{name}.py imports {mod} inside a function: move it to the top, or the shared thing down a layer"
        if ours(mod):
            private = [n for n in names if n.startswith('_')]
            assert not private, f"{name}.py imports private {private} from {mod}: make it public in its owner, or keep it home"

@pytest.mark.parametrize('name', [m for m in modules() if m != 'testing'])
def test_only_lower_layers(name):
    "A module imports only modules of lower layers (siblings never import each other; robustness reads learners and ensembles)"
    me = level(name)
    assert me is not None, f"{name}.py has no place in the layer list of tests/test_architecture.py (and the design page)"
    for other in graph()[name]:
        if other == 'testing': pytest.fail(f"{name}.py imports fmcombo.testing: the library never imports it")
        assert level(other) is not None and level(other) < me, f"{name}.py imports {other}, which is not in a lower layer"

def test_the_library_never_imports_testing():
    assert all('testing' not in deps for m, deps in graph().items() if m != 'testing')

def test_import_changes_no_warning_filter():
    "Importing every module of fmcombo, after its dependencies, leaves the process's warning filters as they were"
    third = sorted({(i, tuple(n for n in names if n != '*')) for m in modules() for i, names, fn in imports(m)
                    if not fn and not ours(i) and i not in ('__future__', 'fmcombo')})
    code = ("import warnings, importlib\n"   # dependencies first, with the names we take from them (transformers loads lazily)
            f"for m, names in {third!r}:\n    mod = importlib.import_module(m)\n    for n in names: getattr(mod, n)\n"
            "before = list(warnings.filters)\n"
            f"for m in {modules()!r}: importlib.import_module('fmcombo.' + m)\n"
            "assert list(warnings.filters) == before, [f for f in warnings.filters if f not in before]\n")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
