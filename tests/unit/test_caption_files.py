"""The caption file readers: CSV, Flickr30k `|` files, Flickr8k token files, COCO and Karpathy JSON."""

from __future__ import annotations

import json

import pytest

from visual_search.measure.caption_files import CaptionFileError, detect_format, read_captions
from visual_search.errors import VisualSearchError


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_header_quotes_and_bare_commas(tmp_path):
    path = write(tmp_path, "captions.csv", (
        "image,caption\n"
        'cat.jpg,"a tabby cat, close up"\n'
        "dog.jpg,two dogs at a door\n"
        "cat.jpg,A cat, with green eyes .\n"  # Kaggle's Flickr8k captions.txt: commas unquoted
        "\n"
    ))
    captions, skipped = read_captions(path)
    assert captions == {"cat.jpg": ["a tabby cat, close up", "A cat, with green eyes ."],
                        "dog.jpg": ["two dogs at a door"]}
    assert list(captions) == ["cat.jpg", "dog.jpg"] and skipped == []


def test_csv_without_header_and_its_errors(tmp_path):
    captions, _ = read_captions(write(tmp_path, "c.csv", "a.jpg,  a   red car \nb.jpg,a boat\n"))
    assert captions == {"a.jpg": ["a red car"], "b.jpg": ["a boat"]}
    with pytest.raises(CaptionFileError, match=r"c2.csv, line 3: expected 'image,caption', got 'b.jpg'"):
        read_captions(write(tmp_path, "c2.csv", "image,caption\na.jpg,a car\nb.jpg\n"))
    with pytest.raises(CaptionFileError, match="line 2"):  # an image with an empty caption
        read_captions(write(tmp_path, "c3.csv", "a.jpg,a car\nb.jpg,  \n"))


def test_flickr30k_results_file(tmp_path):
    path = write(tmp_path, "results.csv", (
        "image_name| comment_number| comment\n"
        "1000092795.jpg| 0| Two young guys with shaggy hair look at their hands .\n"
        "1000092795.jpg| 1| Two friends enjoy time spent together | outdoors .\n"
        "2199200615.jpg| 4 A dog runs across the grass .\n"  # the real file's broken line
        "36979.jpg| 0| A group of friends playing cards .\n"
    ))
    assert detect_format(path, path.read_text()) == "flickr30k"
    with pytest.raises(CaptionFileError) as err:
        read_captions(path)
    message = str(err.value)
    assert "results.csv, line 4" in message and "2199200615.jpg| 4 A dog" in message and "--skip-malformed" in message
    captions, skipped = read_captions(path, skip_malformed=True)
    assert skipped == ["line 4"]
    assert captions == {
        "1000092795.jpg": ["Two young guys with shaggy hair look at their hands .",
                           "Two friends enjoy time spent together | outdoors ."],
        "36979.jpg": ["A group of friends playing cards ."],
    }


def test_flickr8k_token_file(tmp_path):
    path = write(tmp_path, "Flickr8k.token.txt", (
        "1000268201_693b08cb0e.jpg#0\tA child in a pink dress is climbing up a set of stairs .\n"
        "1000268201_693b08cb0e.jpg#1\tA girl going into a wooden building .\n"
        "1001773457_577c3a7d70.jpg#0\tA black dog and a spotted dog are fighting\n"
    ))
    assert detect_format(path, path.read_text()) == "flickr8k"
    captions, _ = read_captions(path)
    assert [len(v) for v in captions.values()] == [2, 1]
    assert captions["1000268201_693b08cb0e.jpg"][1] == "A girl going into a wooden building ."
    bad = write(tmp_path, "bad.token.txt", "a.jpg#0\tA dog\na.jpg A cat without tab or number\n")
    with pytest.raises(CaptionFileError, match=r"bad.token.txt, line 2: expected 'image.jpg#n<TAB>caption'"):
        read_captions(bad)


def test_coco_captions_json(tmp_path):
    doc = {
        "images": [{"id": 391895, "file_name": "COCO_val2014_000000391895.jpg"},
                   {"id": 522418, "file_name": "COCO_val2014_000000522418.jpg"}],
        "annotations": [
            {"image_id": 391895, "id": 1, "caption": "A man riding a motorcycle on a dirt road."},
            {"image_id": 522418, "id": 2, "caption": "A woman cutting a large cake."},
            {"image_id": 391895, "id": 3, "caption": "A person on a bike in the mountains."},
        ],
    }
    captions, _ = read_captions(write(tmp_path, "captions_val2014.json", json.dumps(doc)))
    assert captions == {
        "COCO_val2014_000000391895.jpg": ["A man riding a motorcycle on a dirt road.",
                                          "A person on a bike in the mountains."],
        "COCO_val2014_000000522418.jpg": ["A woman cutting a large cake."],
    }
    doc["annotations"].append({"image_id": 999, "caption": "an image nobody listed"})
    with pytest.raises(CaptionFileError, match="annotation 4"):
        read_captions(write(tmp_path, "bad.json", json.dumps(doc)))
    with pytest.raises(CaptionFileError, match="not valid JSON"):
        read_captions(write(tmp_path, "broken.json", '{"images": ['))


def test_karpathy_split_json(tmp_path):
    doc = {"images": [{"filename": "a.jpg", "split": "test", "sentences": [{"raw": "A dog ."}, {"raw": "A pup ."}]}]}
    captions, _ = read_captions(write(tmp_path, "dataset_flickr8k.json", json.dumps(doc)))
    assert captions == {"a.jpg": ["A dog .", "A pup ."]}


def test_unreadable_inputs_say_what_is_wrong(tmp_path):
    with pytest.raises(CaptionFileError, match="not found"):
        read_captions(tmp_path / "nope.csv")
    with pytest.raises(CaptionFileError, match="holds no captions"):
        read_captions(write(tmp_path, "empty.csv", "image,caption\n"))
    with pytest.raises(CaptionFileError, match="line 1"):  # a forced format that does not fit
        read_captions(write(tmp_path, "c.csv", "a.jpg,a dog\n"), fmt="flickr8k")
    with pytest.raises(CaptionFileError, match="unknown caption format"):
        read_captions(write(tmp_path, "d.csv", "a.jpg,a dog\n"), fmt="yaml")
    assert issubclass(CaptionFileError, VisualSearchError)  # the CLI prints it instead of a traceback
