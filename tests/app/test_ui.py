"""Small words the pages share (app/ui.py)."""
from __future__ import annotations

from app import ui


def test_feature_size_words__name_the_input_size_and_the_protocols_when_they_differ():
    rotation = {"input": {"image_size": 128}, "metrics": {"downstream_image_size": 96}}
    words = ui.feature_size_words(rotation)
    assert "128-px photos" in words and "96-px photos" in words
    same = ui.feature_size_words({"input": {"image_size": 96}, "metrics": {"downstream_image_size": 96}})
    assert same == "features of 96-px photos"
    assert ui.feature_size_words({"input": {"image_size": 64}}) == "features of 64-px photos"  # a card without protocol metrics
    assert ui.feature_size_words(None) == ""
