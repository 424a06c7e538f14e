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
    reg.add("beta", 2)
    reg.add("alpha", 1)
    with pytest.raises(UnknownNameError) as info:
        reg.get("gamma")
    assert str(info.value) == "unknown widget 'gamma'; known: alpha, beta"
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert reg.names() == ["alpha", "beta"] and "beta" in reg


def test_export_families_are_registered():
    from indexers.export import get_family
    from indexers.export.bert import BertExportConfig, export_bert
    from indexers.export.clip import ClipExportConfig, export_clip
    from indexers.export.resnet import ResnetExportConfig, export_resnet

    clip, resnet, bert = get_family("clip"), get_family("resnet"), get_family("bert")
    assert (clip.modalities, clip.config, clip.export) == (("image", "text"), ClipExportConfig, export_clip)
    assert (resnet.modalities, resnet.config, resnet.export) == (("image",), ResnetExportConfig, export_resnet)
    assert (bert.modalities, bert.config, bert.export) == (("text",), BertExportConfig, export_bert)
    with pytest.raises(UnknownNameError, match="known: bert, clip, resnet"):
        get_family("vit")


def test_the_family_decorator_refuses_a_taken_name():
    from indexers.export import get_family
    from indexers.export.bert import BertExportConfig
    from indexers.export.families import family

    register = family("clip", description="another clip", modalities=("text",), config=BertExportConfig)
    with pytest.raises(ConfigError, match="model family 'clip' is already registered"):
        register(lambda config, out_dir: None)
    assert get_family("clip").description.startswith("open_clip")
