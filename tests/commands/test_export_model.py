"""``scenetune export --format``: a small real sweep's evaluated model
exported in each format, then loaded in a fresh Python that imports only
TensorFlow and NumPy (what a client has) and compared with the Keras model;
``scenetune predict`` on the exports; bad input refused in one line with
nothing written."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from scenetune.cli import main
from scenetune.search.run import run_sweep
from scenetune.search.spec import load_spec

pytestmark = pytest.mark.slow

FORMATS = ("savedmodel", "tflite", "tflite-int8")
CARD_FIELDS = {"format", "size_mb", "accuracy", "keras_accuracy", "agreement", "latency_ms", "class_names", "source",
               "test_images", "image_size", "scenetune_version", "tensorflow_version"}

# What a client that knows nothing of scenetune runs: TensorFlow and NumPy only.
FRESH = r"""
import json, sys
import numpy as np
import tensorflow as tf
job = json.load(open(sys.argv[1]))
images = np.load(job["images"])
out = {}
served = tf.saved_model.load(job["savedmodel"])
out["signatures"] = sorted(served.signatures)
pixels = served.signatures["serving_uint8"](images=tf.constant(images))
out["savedmodel_uint8"] = pixels["probabilities"].numpy().tolist()
for key, files in (("savedmodel_jpeg", job["jpegs"]), ("savedmodel_files", job["files"])):
    answer = served.signatures["serving_default"](image_bytes=tf.constant([open(p, "rb").read() for p in files]))
    out[key] = {"probabilities": answer["probabilities"].numpy().tolist(),
                "probabilities_dtype": answer["probabilities"].dtype.name,
                "class_name": [n.decode() for n in answer["class_name"].numpy()],
                "class_names": [[n.decode() for n in row] for row in answer["class_names"].numpy()]}
for name in ("tflite", "tflite-int8"):
    interpreter = tf.lite.Interpreter(model_path=job[name])
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(source["index"], list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], images.astype(source["dtype"]))
    interpreter.invoke()
    values = interpreter.get_tensor(target["index"])
    scale, zero_point = target["quantization"]
    probabilities = values if target["dtype"] == np.float32 else (values.astype(np.float32) - zero_point) * scale
    out[name] = {"probabilities": probabilities.tolist(), "input_dtype": np.dtype(source["dtype"]).name,
                 "input_quantization": [float(v) for v in source["quantization"]],
                 "output_dtype": np.dtype(target["dtype"]).name,
                 "tensor_dtypes": sorted({np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()})}
out["scenetune_loaded"] = any(m.split(".")[0] == "scenetune" for m in sys.modules)
json.dump(out, open(job["out"], "w"))
"""


@pytest.fixture(scope="module")
def swept(ray_local, tmp_path_factory, synth_root):
    import yaml

    from tests.conftest import BASE_SPEC, deep_update

    tmp = tmp_path_factory.mktemp("exportsweep")
    raw = deep_update(BASE_SPEC, {"name": "exportme", "data": {"root": synth_root}, "storage": str(tmp),
                                  "search": {"num_samples": 2},
                                  "fixed": {"epochs": 4, "cnn_filters": 16, "dense_units": 128},
                                  "space": {"learning_rate": {"loguniform": [3.0e-3, 1.0e-2]}}})
    (tmp / "spec.yaml").write_text(yaml.safe_dump(raw))
    return run_sweep(load_spec(str(tmp / "spec.yaml")))


@pytest.fixture(scope="module")
def evaluated(swept, tmp_path_factory):
    uri = str(tmp_path_factory.mktemp("exportevaluated") / "exportme")
    shutil.copytree(swept, uri)
    assert main(["evaluate", uri]) == 0
    return uri


@pytest.fixture(scope="module")
def exports(evaluated, tmp_path_factory):
    """``{format: OUT}``, each written by the CLI."""
    base = tmp_path_factory.mktemp("exports")
    outs = {}
    for fmt in FORMATS:
        outs[fmt] = str(base / fmt / "model")
        assert main(["export", evaluated, "--format", fmt, "--out", outs[fmt]]) == 0, fmt
    return outs


@pytest.fixture(scope="module")
def test_split(evaluated, synth_root):
    """``(files, uint8 images by the training decode, labels, Keras probabilities, classes)``."""
    import keras

    from scenetune.trainables.data.decode import load_resized

    metrics = read_json(os.path.join(evaluated, "final", "metrics.json"))
    split = pd.read_csv(os.path.join(evaluated, "split.csv"))
    rows = split[split["split"] == "test"]
    files = [os.path.join(synth_root, p) for p in rows["path"]]
    images = np.stack([load_resized(f, metrics["image_size"]) for f in files])
    labels = np.asarray([metrics["classes"].index(label) for label in rows["label"]])
    model = keras.models.load_model(os.path.join(evaluated, "final", "model.keras"))
    return files, images, labels, model.predict(images.astype(np.float32), verbose=0), metrics["classes"], model


@pytest.fixture(scope="module")
def fresh(exports, test_split, tmp_path_factory):
    """What :data:`FRESH` saw of the three exports, with the Keras model's
    answers for the same inputs."""
    from scenetune.trainables.data.decode import load_resized

    files, images, _, _, _, model = test_split
    tmp = tmp_path_factory.mktemp("fresh")
    np.save(tmp / "images.npy", images)
    jpegs = []
    for i, image in enumerate(images[:6]):  # at the model's size: decoded with no resize, by libjpeg both ways
        jpegs.append(str(tmp / f"small_{i}.jpg"))
        Image.fromarray(image).save(jpegs[-1], quality=92)
    job = {"images": str(tmp / "images.npy"), "jpegs": jpegs, "files": files, "out": str(tmp / "out.json"),
           "savedmodel": exports["savedmodel"], "tflite": os.path.join(exports["tflite"], "model.tflite"),
           "tflite-int8": os.path.join(exports["tflite-int8"], "model.tflite")}
    (tmp / "job.json").write_text(json.dumps(job))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, "-c", FRESH, str(tmp / "job.json")], capture_output=True, text=True,
                         env=env, cwd=str(tmp), check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads((tmp / "out.json").read_text())
    small = np.stack([load_resized(p, images.shape[1]) for p in jpegs]).astype(np.float32)
    seen["keras_jpeg"] = model.predict(small, verbose=0)
    return seen


def read_json(path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_lines(path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def agreement(a, b) -> float:
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))


def test_the_client_imports_no_scenetune(fresh):
    assert fresh["scenetune_loaded"] is False


def test_savedmodel_takes_jpeg_bytes_and_returns_names_and_probabilities(fresh, test_split):
    classes = test_split[4]
    assert fresh["signatures"] == ["serving_default", "serving_uint8"]
    answer = fresh["savedmodel_jpeg"]
    probs = np.asarray(answer["probabilities"])
    assert answer["probabilities_dtype"] == "float32" and probs.shape == (6, len(classes))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # JPEGs at the model's size: the signature's decode gives the training decode's pixels
    np.testing.assert_allclose(probs, fresh["keras_jpeg"], atol=1e-5)
    assert answer["class_name"] == [classes[i] for i in probs.argmax(axis=1)]
    assert answer["class_names"] == [classes] * 6
    files = fresh["savedmodel_files"]  # the test split's own 40 px files: decoded and resized inside
    assert len(files["probabilities"]) == len(test_split[0]) and set(files["class_name"]) <= set(classes)


@pytest.mark.parametrize("key", ["savedmodel_uint8", "tflite"])
def test_float_exports_agree_with_the_keras_model(fresh, test_split, key):
    probs = np.asarray(fresh[key] if key != "tflite" else fresh[key]["probabilities"])
    keras_probs = test_split[3]
    assert agreement(probs, keras_probs) >= 0.99
    np.testing.assert_allclose(probs, keras_probs, atol=1e-4)


def test_tflite_float_takes_float_pixels_and_int8_takes_raw_uint8_pixels(fresh):
    assert (fresh["tflite"]["input_dtype"], fresh["tflite"]["output_dtype"]) == ("float32", "float32")
    int8 = fresh["tflite-int8"]
    assert (int8["input_dtype"], int8["output_dtype"]) == ("uint8", "uint8")
    assert int8["input_quantization"] == [1.0, 0.0], "raw pixels in, as they are"
    assert "float32" not in int8["tensor_dtypes"], int8["tensor_dtypes"]  # full-integer: no float tensor at all


def test_int8_is_smaller_and_its_card_tells_what_the_client_sees(exports, fresh, test_split):
    sizes = {fmt: os.path.getsize(os.path.join(exports[fmt], "model.tflite")) for fmt in ("tflite", "tflite-int8")}
    assert sizes["tflite-int8"] < 0.5 * sizes["tflite"], sizes
    card = read_json(os.path.join(exports["tflite-int8"], "card.json"))
    probs = np.asarray(fresh["tflite-int8"]["probabilities"])
    labels, keras_probs = test_split[2], test_split[3]
    assert card["accuracy"] == pytest.approx(np.mean(probs.argmax(axis=1) == labels), abs=1e-6)
    assert card["agreement"] == pytest.approx(agreement(probs, keras_probs), abs=1e-6)
    assert card["accuracy_drop"] == pytest.approx(card["keras_accuracy"] - card["accuracy"], abs=1e-6)
    assert card["quantization"]["calibration_split"] == "train"
    split = pd.read_csv(os.path.join(card["source"]["experiment"], "split.csv"))
    assert card["quantization"]["calibration_images"] == min(200, (split["split"] == "train").sum())


def test_int8_scales_each_convolution_channel_and_each_dense_layer_as_a_whole(exports):
    """``DENSE_PER_TENSOR`` takes effect (a TensorFlow without the setting
    would quantize dense layers per channel, and this fails)."""
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=os.path.join(exports["tflite-int8"], "model.tflite"))
    # weights: int8 tensors whose first dimension is output units or channels (activations: batch 1)
    weights = [d for d in interpreter.get_tensor_details() if d["dtype"] == np.int8 and d["shape"][0] > 1]
    scales = {tuple(d["shape"]): len(d["quantization_parameters"]["scales"]) for d in weights}
    dense = {shape: n for shape, n in scales.items() if len(shape) == 2}
    conv = {shape: n for shape, n in scales.items() if len(shape) == 4}
    assert dense and all(n == 1 for n in dense.values()), dense
    assert conv and all(n == shape[0] for shape, n in conv.items()), conv


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_card_holds_the_check(exports, evaluated, test_split, fmt):
    card = read_json(os.path.join(exports[fmt], "card.json"))
    assert CARD_FIELDS <= set(card), CARD_FIELDS - set(card)
    metrics = read_json(os.path.join(evaluated, "final", "metrics.json"))
    assert card["format"] == fmt and card["class_names"] == metrics["classes"] == test_split[4]
    assert card["keras_accuracy"] == pytest.approx(metrics["accuracy"]), "the Keras model on the same test split"
    assert card["test_images"] == metrics["test_images"] == len(test_split[0])
    assert card["source"] == {"experiment": evaluated, "trial_id": metrics["trial_id"], "kind": "final",
                              "model": os.path.join(evaluated, "final", "model.keras")}
    assert card["latency_ms"] > 0 and card["size_mb"] > 0
    names = read_lines(os.path.join(exports[fmt], "class_names.txt"))
    assert names == metrics["classes"]
    if fmt != "tflite-int8":
        assert card["agreement"] >= 0.99
    leftovers = [n for n in os.listdir(os.path.dirname(exports[fmt])) if n != "model"]
    assert leftovers == [], "the hidden work folder was renamed, not left beside"


def kept_cards(experiment: str) -> list[dict]:
    folder = os.path.join(experiment, "exports")
    return [read_json(os.path.join(folder, name)) for name in sorted(os.listdir(folder))] \
        if os.path.isdir(folder) else []


def test_the_experiment_keeps_each_card_and_the_report_lists_them(exports, evaluated, tmp_path):
    cards = {card["out"]: card for card in kept_cards(evaluated)}
    for fmt, out in exports.items():
        assert cards[out] == {**read_json(os.path.join(out, "card.json")), "out": out}, fmt
    assert main(["report", evaluated, "--out", str(tmp_path / "report")]) == 0
    listed = pd.read_csv(tmp_path / "report" / "tables" / "exported_models.csv").set_index("exported_to")
    for fmt, out in exports.items():
        assert listed.loc[out, "format"] == fmt and listed.loc[out, "size_mb"] == pytest.approx(cards[out]["size_mb"])
    deployment = pd.read_csv(tmp_path / "report" / "tables" / "deployment.csv")
    assert {"model_mb", "latency_ms", "front_model_mb", "front_latency_ms"} <= set(deployment.columns)
    assert len(deployment) == 2 and (tmp_path / "report" / "figures" / "deployment.png").exists()


def test_predict_with_the_exports_answers_as_the_keras_model(exports, evaluated, test_split, tmp_path, capsys):
    images = tmp_path / "photos"
    images.mkdir()
    for path in test_split[0][:4]:
        shutil.copy(path, images / os.path.basename(path))
    answers = {}
    for name, model in (("keras", os.path.join(evaluated, "final")), ("savedmodel", exports["savedmodel"]),
                        ("tflite", os.path.join(exports["tflite"], "model.tflite")),
                        ("tflite-int8", exports["tflite-int8"])):
        assert main(["predict", model, str(images), "--format", "json", "--top", "3"]) == 0, name
        answers[name] = json.loads(capsys.readouterr().out)["predictions"]
    assert len(answers["keras"]) == 4
    for name in ("savedmodel", "tflite"):
        for mine, theirs in zip(answers[name], answers["keras"]):
            assert mine["path"] == theirs["path"] and mine["top"][0]["class"] == theirs["top"][0]["class"]
            assert mine["top"][0]["probability"] == pytest.approx(theirs["top"][0]["probability"], abs=1e-4)
    assert all(len(p["top"]) == 3 for p in answers["tflite-int8"])

    assert main(["predict", exports["tflite"], str(images), "--gradcam", str(tmp_path / "cams")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Grad-CAM needs the Keras model" in err
    assert not (tmp_path / "cams").exists()


def test_a_trial_s_checkpoint_into_an_empty_folder(evaluated, tmp_path, capsys):
    from scenetune.analysis import load_experiment

    exp = load_experiment(evaluated)
    trial = max(exp.trials["trial_id"])
    out = tmp_path / "phone"
    out.mkdir()  # an empty folder is used
    assert main(["export", evaluated, "--format", "tflite", "--out", str(out), "--trial", trial]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"wrote {out} (tflite, ")
    card = read_json(out / "card.json")
    assert card["source"]["trial_id"] == trial and card["source"]["kind"] == "checkpoint"
    assert "checkpoint_" in card["source"]["model"] and card["class_names"] == exp.configs[trial]["data"]["classes"]
    assert sorted(os.listdir(out)) == ["card.json", "class_names.txt", "model.tflite"]


def test_an_export_that_disagrees_fails_and_writes_nothing(evaluated, tmp_path, capsys, monkeypatch):
    import keras

    from scenetune.commands import export_formats

    original = export_formats.tflite_bytes

    def shifted(model, size, calibration=None):  # 1 - p: its top-1 is the Keras model's least likely class
        flipped = keras.layers.Lambda(lambda p: 1.0 - p)(model.output)
        return original(keras.Model(model.input, flipped), size, calibration)

    monkeypatch.setattr(export_formats, "tflite_bytes", shifted)
    out = tmp_path / "bad" / "model"
    assert main(["export", evaluated, "--format", "tflite", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "agrees with the Keras model on 0.0% of the" in err and "was not written" in err
    assert str(out) not in [card["out"] for card in kept_cards(evaluated)], "no card kept for a failed export"
    assert not (tmp_path / "bad").exists() or os.listdir(tmp_path / "bad") == []


def test_bad_input_is_one_line_and_writes_nothing(swept, evaluated, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("the user's")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    out = str(tmp_path / "out")
    cases = [
        ([swept, "--format", "tflite", "--out", out], "no final model", "run `scenetune evaluate"),
        ([evaluated, "--format", "tflite", "--out", str(taken)], "exists and is not empty", "nothing is overwritten"),
        ([evaluated, "--format", "tflite", "--out", str(a_file / "out")], "cannot be written", "is a file"),
        ([evaluated, "--format", "tflite", "--out", "/proc/scenetune-export"], "cannot be written", "not writable"),
        ([evaluated, "--format", "tflite", "--out", out, "--trial", "nope"], "--trial: no trial 'nope'", "trials: "),
        ([evaluated, "--format", "tflite"], "--format needs --out DIR", ""),
        ([evaluated, "--optuna", f"sqlite:///{tmp_path}/s.db", "--out", out], "--out goes with --format", ""),
        ([evaluated, "--format", "tflite", "--out", str(tmp_path / "x.tflite")], "a folder to create", ""),
    ]
    before = sorted(os.listdir(tmp_path))
    for args, message, detail in cases:
        assert main(["export"] + args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("scenetune: error: ") and err.count("\n") == 1, (args, err)
        assert message in err and detail in err, (args, err)
    for args, message in [([evaluated, "--format", "onnx", "--out", out], "invalid choice: 'onnx'"),
                          ([evaluated], "one of the arguments --optuna --format is required"),
                          ([evaluated, "--format", "tflite", "--optuna", "sqlite:///x.db"], "not allowed with")]:
        assert main(["export"] + args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert err[0].startswith("usage: scenetune export") and err[-1].startswith("scenetune: error: export: ")
        assert message in err[-1], err
    assert sorted(os.listdir(tmp_path)) == before
    assert (taken / "mine.txt").read_text() == "the user's" and os.listdir(taken) == ["mine.txt"]
    assert not os.path.exists(os.path.join(swept, "final"))


def test_the_parser_offers_the_formats_the_export_knows():
    from scenetune.cli_parser import EXPORT_FORMATS
    from scenetune.commands.export_model import FORMATS as KNOWN

    assert EXPORT_FORMATS == KNOWN == FORMATS


def test_an_experiment_on_s3_is_exported_to_a_local_folder(evaluated, moto_s3, tmp_path, capsys):
    uri = moto_s3(evaluated, "scenetune/exports/exportme")
    out = tmp_path / "from-s3"
    assert main(["export", uri, "--format", "tflite", "--out", str(out)]) == 0
    card = read_json(out / "card.json")
    assert card["source"]["experiment"] == uri and card["source"]["model"] == f"{uri}/final/model.keras"
    assert card["agreement"] >= 0.99 and card["test_images"] > 0
    assert main(["export", uri, "--format", "tflite", "--out", f"{uri}/phone"]) == 2
    assert "a local folder, please" in capsys.readouterr().err
