import pytest

from indexers.registry import Registry
from mmsearch.errors import ConfigError, UnknownNameError


def test_registering_a_name_twice_raises():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(ConfigError, match="widget 'a' is already registered"):
        reg.add("a", 2)
    assert reg.get("a") == 1


def test_unknown_name_lists_the_known_ones():
    reg: Registry[int] = Registry("widget")

    @reg.register("beta")
    def _beta():
        return 2

    reg.add("alpha", 1)
    with pytest.raises(UnknownNameError) as info:
        reg.get("gamma")
    assert str(info.value) == "unknown widget 'gamma'; known: alpha, beta"
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert reg.names() == ["alpha", "beta"] and "beta" in reg


def test_export_families_are_registered():
    from indexers.export import get_family

    assert get_family("clip").modalities == ("image", "text")
    assert get_family("resnet").modalities == ("image",)
    assert get_family("bert").modalities == ("text",)
    with pytest.raises(UnknownNameError, match="known: bert, clip, resnet"):
        get_family("vit")
