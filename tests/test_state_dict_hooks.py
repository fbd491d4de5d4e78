"""Module's state_dict / load_state_dict hooks (register_state_dict_pre_hook,
register_state_dict_post_hook, register_load_state_dict_pre_hook,
register_load_state_dict_post_hook), run side by side with torch on the same small network:
the same calls, in the same order, with the same arguments, and the same effects."""

import numpy as np
import pytest

from fastconv import nn

torch = pytest.importorskip("torch")


def _pair(rng):
    """The same Sequential(Linear, ReLU, Sequential(Linear)) in fastconv and torch, with the
    same fresh random weights, and a state dict of other fresh values for it."""
    a, b, c = (int(v) for v in rng.integers(2, 6, 3))
    ours = nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Sequential(nn.Linear(b, c)))
    theirs = torch.nn.Sequential(torch.nn.Linear(a, b), torch.nn.ReLU(),
                                 torch.nn.Sequential(torch.nn.Linear(b, c)))
    for k, v in theirs.state_dict().items():
        v.copy_(torch.from_numpy(rng.standard_normal(tuple(v.shape)).astype(np.float32)))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    fresh = {k: rng.standard_normal(tuple(v.shape)).astype(np.float32)
             for k, v in theirs.state_dict().items()}
    return ours, theirs, fresh


def _modules(net):
    return [net, net[0], net[1], net[2], net[2][0]]


def _name(net, module):
    return ["root", "0", "1", "2", "2.0"][[id(m) for m in _modules(net)].index(id(module))]


def _as_numpy(sd):
    return {k: (v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
            for k, v in sd.items()}


def test_state_dict_hooks_are_called_as_torch_calls_them(rng):
    ours, theirs, _ = _pair(rng)
    logs, keep_vars = {}, bool(rng.integers(0, 2))
    for label, net in (("ours", ours), ("theirs", theirs)):
        log = logs[label] = []
        for m in _modules(net):
            m.register_state_dict_pre_hook(
                lambda mod, prefix, keep_vars, net=net, log=log:
                log.append(("pre", _name(net, mod), prefix, keep_vars)))
            m.register_state_dict_post_hook(
                lambda mod, sd, prefix, meta, net=net, log=log:
                log.append(("post", _name(net, mod), prefix, sorted(sd), dict(meta))))
        net.state_dict(keep_vars=keep_vars, prefix="net.")
        net.state_dict()
    assert logs["ours"] == logs["theirs"]
    assert len(logs["ours"]) == 20


def test_state_dict_post_hook_edits_in_place_and_must_return_none(rng):
    ours, theirs, _ = _pair(rng)
    scale = float(rng.uniform(0.5, 2.0))
    for net in (ours, theirs):
        def edit(mod, sd, prefix, meta):
            sd[prefix + "scale"] = np.float32(scale) if mod is ours[2] else torch.tensor(scale)
            del sd[prefix + "0.bias"]
        net[2].register_state_dict_post_hook(edit)
    o, t = ours.state_dict(), theirs.state_dict()
    assert list(o) == list(t)
    for k, v in _as_numpy(t).items():
        np.testing.assert_array_equal(np.asarray(o[k]), v, err_msg=k)
    # the metadata travels with the dictionary, keyed by module prefix
    assert dict(o._metadata) == dict(t._metadata)
    for net in (ours, theirs):
        net[0].register_state_dict_post_hook(lambda mod, sd, prefix, meta: sd)
        with pytest.raises(RuntimeError, match="state_dict post-hook must return None"):
            net.state_dict()


def test_state_dict_hook_handles_remove(rng):
    ours, theirs, _ = _pair(rng)
    for net in (ours, theirs):
        calls = []
        handles = [net.register_state_dict_pre_hook(lambda *a: calls.append("pre")),
                   net.register_state_dict_post_hook(lambda *a: calls.append("post"))]
        net.state_dict()
        assert calls == ["pre", "post"]
        for h in handles:
            h.remove()
        net.state_dict()
        assert calls == ["pre", "post"]
        with net.register_state_dict_pre_hook(lambda *a: calls.append("ctx")):
            net.state_dict()
        net.state_dict()
        assert calls == ["pre", "post", "ctx"]
    with pytest.raises(TypeError, match="callable"):
        ours.register_load_state_dict_post_hook(3)


def test_load_state_dict_hooks_are_called_as_torch_calls_them(rng):
    ours, theirs, fresh = _pair(rng)
    sd = dict(fresh)
    del sd["0.bias"]
    sd["2.extra"] = np.zeros(2, np.float32)
    logs, assign = {}, bool(rng.integers(0, 2))
    for label, net in (("ours", ours), ("theirs", theirs)):
        log = logs[label] = []
        for m in _modules(net):
            def pre(mod, local, prefix, meta, strict, missing, unexpected, errors,
                    net=net, log=log):
                log.append(("pre", _name(net, mod), prefix, sorted(local), dict(meta), strict,
                            list(missing), list(unexpected), list(errors)))

            def post(mod, keys, net=net, log=log):
                log.append(("post", _name(net, mod), type(keys).__name__,
                            list(keys.missing_keys), list(keys.unexpected_keys)))
            m.register_load_state_dict_pre_hook(pre)
            m.register_load_state_dict_post_hook(post)
        given = sd if net is ours else {k: torch.from_numpy(v) for k, v in sd.items()}
        result = net.load_state_dict(given, strict=False)
        log.append((result.missing_keys, result.unexpected_keys))
        # with metadata (from state_dict()) and assign=True, local_metadata says so
        net.load_state_dict(net.state_dict(), assign=assign)
    assert logs["ours"] == logs["theirs"]
    assert logs["ours"][10] == (["0.bias"], ["2.extra"])


def test_load_state_dict_pre_hook_renames_legacy_keys(rng):
    ours, theirs, fresh = _pair(rng)
    legacy = {k.replace("weight", "w"): v for k, v in fresh.items()}

    def upgrade(mod, local, prefix, meta, strict, missing, unexpected, errors):
        for k in [k for k in local if k == prefix + "w"]:
            local[prefix + "weight"] = local.pop(k)

    for net in (ours, theirs):
        net[0].register_load_state_dict_pre_hook(upgrade)
        net[2][0].register_load_state_dict_pre_hook(upgrade)
    given = dict(legacy)
    ours.load_state_dict(given)
    assert given == legacy  # the caller's dictionary is not edited
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in legacy.items()})
    for (k, o), t in zip(ours.state_dict().items(), _as_numpy(theirs.state_dict()).values()):
        np.testing.assert_array_equal(o, t, err_msg=k)
        np.testing.assert_array_equal(o, fresh[k], err_msg=k)


def test_load_state_dict_pre_hook_error_message_fails_the_load(rng):
    ours, theirs, fresh = _pair(rng)
    before = ours.state_dict()
    msg = f"unsupported version {int(rng.integers(0, 100))}"
    messages = []
    for net in (ours, theirs):
        net[2].register_load_state_dict_pre_hook(
            lambda mod, local, prefix, meta, strict, missing, unexpected, errors:
            errors.append(msg))
        with pytest.raises(RuntimeError) as e:
            given = fresh if net is ours else {k: torch.from_numpy(v) for k, v in fresh.items()}
            net.load_state_dict(given, strict=False)
        messages.append(str(e.value))
    assert messages[0] == messages[1] == f"Error(s) in loading state_dict for Sequential:\n\t{msg}"
    for k, v in ours.state_dict().items():  # fastconv: a failed load copies nothing
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_load_state_dict_post_hook_sees_loaded_values_and_edits_keys(rng):
    ours, theirs, fresh = _pair(rng)
    sd = dict(fresh)
    del sd["2.0.bias"]
    sd["stale.weight"] = np.zeros(3, np.float32)
    seen = {}
    for label, net in (("ours", ours), ("theirs", theirs)):
        def forgive(mod, keys, label=label):
            seen[label] = np.array(mod[0].weight.detach().numpy())
            keys.missing_keys.remove("2.0.bias")
            keys.unexpected_keys.clear()
        h = net.register_load_state_dict_post_hook(forgive)
        given = sd if net is ours else {k: torch.from_numpy(v) for k, v in sd.items()}
        result = net.load_state_dict(given)  # strict: nothing left to reject
        assert (result.missing_keys, result.unexpected_keys) == ([], [])
        h.remove()
        with pytest.raises(RuntimeError, match="Missing key"):
            net.load_state_dict(given)
        net.register_load_state_dict_post_hook(lambda mod, keys: keys)
        with pytest.raises(AssertionError, match="not expected to return new values"):
            net.load_state_dict(fresh if net is ours else
                                {k: torch.from_numpy(v) for k, v in fresh.items()})
    np.testing.assert_array_equal(seen["ours"], seen["theirs"])
    np.testing.assert_array_equal(seen["ours"], fresh["0.weight"])


def test_failed_load_restores_what_post_hooks_saw_loaded(rng):
    """fastconv's difference: values copied before a post hook ran are put back when the
    load fails afterwards (torch keeps them)."""
    ours, _, fresh = _pair(rng)
    before = ours.state_dict()
    seen = []
    ours[0].register_load_state_dict_post_hook(
        lambda mod, keys: seen.append(mod.weight.detach().numpy().copy()))
    ours[2].register_load_state_dict_post_hook(
        lambda mod, keys: keys.missing_keys.append("2.made_up"))
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "2.made_up"'):
        ours.load_state_dict(fresh)
    np.testing.assert_array_equal(seen[0], fresh["0.weight"])
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
