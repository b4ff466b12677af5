"""Input pipelines side by side: images/s through ``model.fit`` at 224 px with
the seed report's augmentation, same images, same model, one process.

    .venv/bin/python benchmarks/pipeline.py                 # 1,040 JPEGs, 5 epochs
    .venv/bin/python benchmarks/pipeline.py --images 2000 --epochs 3

Each row prints epoch 1 (cold: it includes building a cache), epoch 2, and the median of epochs 2 to
--epochs ("warm"): a warm epoch of the fast rows lasts a fraction of a second here, where one hiccup
of the machine halves a single epoch's rate, so the goals are judged on the warm median (every row the
same way; the single epochs are printed too).

Rows:
  (a) ImageDataGenerator.flow_from_directory, as the report used it (Keras' legacy generator);
  (b) keras.utils.image_dataset_from_directory + Keras' random augmentation layers in a tf.data map;
  (c) scenetune: decode cache (built inside epoch 1's time: cold) + OpenCV affine warp in the tf.data map;
  (d) scenetune's feed with augmentation left to the accelerator: uint8 batches from the cache, no CPU
      augmentation (what a GPU trial's CPU side delivers; the RandomAffine layer would run on the GPU);
(run in the order model alone, (c), (d), (a), (b): measured after (a) in the same process, (d) reads
with the pooling model about 4,400 images/s with 0.34 ms of CPU an image instead of 5,800, because (a)'s 19 MB float
batches raise glibc's dynamic mmap threshold; MALLOC_MMAP_THRESHOLD_ fixed, the order does not matter)
plus the minimal model alone on in-memory batches (the ceiling any feed can reach here), decode-only and
augment-only rates, and the memory of two concurrent trials reading one cache vs each holding its own copy.

The images (synthetic scenes, JPEG, about 450 px with each side varied by up to 20%, like photos) are
generated once into --workdir and reused by later runs. The model is minimal (a softmax layer on every
16th pixel of each row and column) so that the feed, not the model, is measured: it stands in for the
accelerator, which on a GPU trial does the model's per-pixel work (the cast to float included) while the
CPU only feeds it. ``--model pool`` puts 16x16 average pooling of every pixel in front of the softmax
instead, so that the CPU casts and averages every pixel too (0.15-0.2 ms an image on 2 cores). It
runs 8 train steps per call into TensorFlow (Keras' ``steps_per_execution``, which a classifier trial
sets with the same name), so that Keras' per-step Python overhead is not what is measured either; every
row uses the same model and setting. Its train step is traced before the clock starts (for each row's
batch types), so epoch 1 measures the input pipeline, not tf.function tracing.
"""

from __future__ import annotations

import argparse
import functools
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPORT_AUGMENT = dict(rotation_range=20, zoom_range=0.15, width_shift_range=0.2, height_shift_range=0.2,
                      shear_range=0.15, horizontal_flip=True)


def generate(workdir: str, images: int, size: int) -> tuple[str, list[str], list[int], list[str]]:
    """The dataset (made once, then reused): root, paths, labels, class names."""
    from scenetune.trainables.data.synth import SCENES, write_synthetic

    classes = min(8, len(SCENES))
    per_class = math.ceil(images / classes)
    root = os.path.join(workdir, f"jpegs-{classes}x{per_class}-{size}px")
    if not os.path.isdir(os.path.join(root, "Images")):
        print(f"generating {classes * per_class} JPEGs of about {size} px in {root} (once)...", flush=True)
        tmp = root + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        write_synthetic(tmp, classes, per_class, size, seed=0, aspect_jitter=0.2,
                        progress=lambda d, t: print(f"  class {d}/{t}", flush=True))
        os.rename(tmp, root)
    names = sorted(os.listdir(os.path.join(root, "Images")))
    paths, labels = [], []
    for label, name in enumerate(names):
        for file in sorted(os.listdir(os.path.join(root, "Images", name))):
            paths.append(os.path.join(root, "Images", name, file))
            labels.append(label)
    return root, paths, labels, names


STEPS_PER_EXECUTION = 8


def minimal_model(image_size: int, classes: int, kind: str = "sample", dtype: str = "float32"):
    """The stand-in for the accelerator: a softmax layer on a 14x14 grid of the
    pixels (``sample``: every 16th row and column, so the CPU does next to no
    work per pixel, as on a GPU trial where the model's per-pixel work runs on
    the GPU), or on 16x16 averages of all of them (``pool``: the CPU casts and
    averages every pixel, 0.15-0.2 ms an image on 2 cores). ``dtype``: the
    batches' (uint8 or float32), so Keras does not cast whole batches first."""
    import keras

    inputs = keras.Input((image_size, image_size, 3), dtype=dtype)
    if kind == "sample":
        x = keras.layers.Lambda(lambda t: t[:, ::16, ::16, :])(inputs)
        x = keras.layers.Rescaling(1 / 255)(x)
    else:
        x = keras.layers.AveragePooling2D(16)(keras.layers.Rescaling(1 / 255)(inputs))
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))
    model.compile("adam", "sparse_categorical_crossentropy", steps_per_execution=STEPS_PER_EXECUTION)
    return model


def warm_up(model, example, batch: int) -> None:
    """Trace the train step for batches like ``example`` (x, y) before timing."""
    import tensorflow as tf

    steps = 2 * STEPS_PER_EXECUTION + 1  # traces both the full and the partial multi-step function
    x, y = (tf.zeros([batch * steps, *t.shape[1:]], t.dtype) for t in map(tf.convert_to_tensor, example))
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch), verbose=0)


def now() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads)."""
    return time.perf_counter(), time.process_time()


def rate(n: int, started: tuple[float, float], extra=(0.0, 0.0)) -> tuple[float, float]:
    """(images/s, CPU ms per image) since ``started``, plus ``extra`` (wall, cpu) seconds."""
    wall, cpu = (b - a + e for a, b, e in zip(started, now(), extra))
    return n / wall, 1000 * cpu / n


def fit_rates(data, n: int, epochs: int, classes: int, image_size: int, example, before_first=None,
              model_kind: str = "sample") -> list:
    """(images/s, CPU ms/image) of each epoch of ``model.fit``. CPU time counts
    every thread of this process: unlike images/s it hardly moves when other
    jobs load the machine. ``before_first()`` returns ``(data, (wall, cpu))``:
    seconds (a cache build) that count in epoch 1. ``example``: a batch (x, y)
    of the types the data yields, to trace the train step with beforehand."""
    import keras

    rates = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = now()

        def on_epoch_end(self, epoch, logs=None):
            rates.append(rate(n, self.started, extra if epoch == 0 else (0.0, 0.0)))

    model = minimal_model(image_size, classes, model_kind, np.asarray(example[0]).dtype.name)
    warm_up(model, example, 32)
    extra = (0.0, 0.0)
    if before_first is not None:
        data, extra = before_first()
    model.fit(data, epochs=epochs, verbose=0, callbacks=[Clock()])
    return rates


def count_rate(dataset, n: int) -> tuple[float, float]:
    started = now()
    for _ in dataset:
        pass
    return rate(n, started)


# ---- memory: two concurrent trials on one cache vs two private copies ----

def smaps(pid: int | None = None) -> dict[str, float]:
    """Rss, Pss and USS (private pages) in MiB, from /proc/PID/smaps_rollup."""
    values = {}
    with open(f"/proc/{pid or os.getpid()}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "kB":
                values[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return {"rss": values.get("Rss", 0), "pss": values.get("Pss", 0),
            "uss": values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)}


def peak_rss() -> float:
    """VmHWM in MiB: this process's peak resident set since it started."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def _trial_reader(folder: str, shared: bool, batch: int, barrier, results) -> None:
    """One 'trial': reads every image of the cache in shuffled batches, the
    way the feed gathers them, then reports its memory while the other trial
    is alive too."""
    array = os.path.join(folder, "images.npy")
    images = np.load(array, mmap_mode="r") if shared else np.load(array)  # private: its own decoded copy
    base = smaps()
    order = np.random.default_rng(os.getpid()).permutation(len(images))
    checksum = 0
    for start in range(0, len(order), batch):
        checksum += int(images[order[start:start + batch]][:, 0, 0, 0].sum())
    barrier.wait()  # both have read everything: measure now, together
    results.append({**smaps(), "peak": peak_rss(), "base_rss": base["rss"], "checksum": checksum})
    barrier.wait()


def memory_of_two_trials(folder: str, shared: bool, batch: int) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier, results = manager.Barrier(2), manager.list()
        procs = [ctx.Process(target=_trial_reader, args=(folder, shared, batch, barrier, results)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        return list(results)


# ---- the run ----

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1040, help="JPEGs to generate and train on (default 1040)")
    parser.add_argument("--source-size", type=int, default=450, help="their typical side in px (default 450)")
    parser.add_argument("--image-size", type=int, default=224, help="model input side (default 224)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5, help="at least 2 (default 5)")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "scenetune-bench"),
                        help="where the generated JPEGs are kept between runs")
    parser.add_argument("--model", choices=("sample", "pool"), default="sample",
                        help="the minimal model: a softmax on every 16th pixel (sample, default) or on 16x16 "
                             "averages of every pixel (pool: the CPU also does the per-pixel work)")
    parser.add_argument("--skip", default="", help="comma-separated rows to skip: a,b,c,d,memory")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    fit = functools.partial(fit_rates, model_kind=args.model)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (epoch 1 is the cold one)")
    os.makedirs(args.workdir, exist_ok=True)
    root, paths, labels, names = generate(args.workdir, args.images, args.source_size)
    n, size, batch, epochs, k = len(paths), args.image_size, args.batch_size, args.epochs, len(names)

    import keras
    import tensorflow as tf

    from scenetune.trainables.classifier.config import Augment
    from scenetune.trainables.data.augment import random_augment, random_warp_uint8
    from scenetune.trainables.data.cache import open_cache
    from scenetune.trainables.data.datacheck import check_dataset
    from scenetune.trainables.data.pipeline import cached_dataset

    keras.utils.set_random_seed(0)
    augment = Augment(**REPORT_AUGMENT)
    rows = []  # (label, rates per epoch or one rate, note)
    cores = os.cpu_count()
    print(f"{n} JPEGs ({k} classes) -> {size}x{size}, batch {batch}, {epochs} epochs, {cores} CPU cores; "
          f"load average now {os.getloadavg()[0]:.1f}", flush=True)

    # The model alone, fed in-memory tensors: the ceiling of any input pipeline here.
    sample = np.random.default_rng(0).integers(0, 255, (batch * 8, size, size, 3), dtype=np.uint8)
    ceiling = tf.data.Dataset.from_tensor_slices((sample, np.arange(len(sample)) % k)).batch(batch).repeat(
        math.ceil(n / len(sample))).take(math.ceil(n / batch))
    uint8_example = (sample[:1], np.zeros(1, np.int64))
    rows.append(("model alone, in-memory uint8 batches", fit(ceiling, n, epochs, k, size, uint8_example),
                 "ceiling"))
    print(f"  {rows[-1][0]}: done", flush=True)

    cache_dir = tempfile.mkdtemp(prefix="cache-", dir=args.workdir)
    try:
        cache = None

        def build():
            nonlocal cache
            started = now()
            cache = open_cache(paths, size, cache_dir, workers=max(2, cores))
            spent = tuple(b - a for a, b in zip(started, now()))
            return cached_dataset(cache, paths, labels, batch, augment, shuffle=True, seed=0), spent

        if "c" not in skip:
            rows.append(("(c) scenetune: cache + OpenCV warp on CPU", fit(None, n, epochs, k, size, uint8_example, build),
                         "epoch 1 includes building the cache"))
            print(f"  {rows[-1][0]}: done", flush=True)
        if cache is None:
            cache = open_cache(paths, size, cache_dir, workers=max(2, cores))
        if "d" not in skip:
            plain = cached_dataset(cache, paths, labels, batch, None, shuffle=True, seed=0)
            rows.append(("(d) scenetune feed, augmentation on the accelerator", fit(plain, n, epochs, k, size, uint8_example),
                         "uint8 batches from the cache"))
            print(f"  {rows[-1][0]}: done", flush=True)

        # The alternatives after ours: (a)'s 19 MB float batches raise glibc's dynamic mmap threshold,
        # after which this process's later 4.8 MB uint8 batches cost more (run (d) after (a) to see it).
        if "a" not in skip:
            from keras.src.legacy.preprocessing.image import ImageDataGenerator

            generator = ImageDataGenerator(**REPORT_AUGMENT).flow_from_directory(
                os.path.join(root, "Images"), target_size=(size, size), batch_size=batch, class_mode="sparse", seed=0)
            rows.append(("(a) ImageDataGenerator.flow_from_directory",
                         fit(generator, n, epochs, k, size, generator[0]), "the report's pipeline"))
            print(f"  {rows[-1][0]}: done", flush=True)

        if "b" not in skip:
            layers = keras.Sequential([
                keras.layers.RandomRotation(REPORT_AUGMENT["rotation_range"] / 360, fill_mode="nearest"),
                keras.layers.RandomZoom(REPORT_AUGMENT["zoom_range"], fill_mode="nearest"),
                keras.layers.RandomTranslation(0.2, 0.2, fill_mode="nearest"),
                keras.layers.RandomShear(x_factor=math.tan(math.radians(REPORT_AUGMENT["shear_range"])),
                                         fill_mode="nearest"),
                keras.layers.RandomFlip("horizontal")])
            ds = keras.utils.image_dataset_from_directory(os.path.join(root, "Images"), image_size=(size, size),
                                                          batch_size=batch, label_mode="int", seed=0, verbose=False)
            ds = ds.map(lambda x, y: (layers(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
            example = [tf.zeros([1, *spec.shape[1:]], spec.dtype) for spec in ds.element_spec]
            rows.append(("(b) image_dataset_from_directory + Keras layers",
                         fit(ds.prefetch(tf.data.AUTOTUNE), n, epochs, k, size, example), "tf.data, AUTOTUNE"))
            print(f"  {rows[-1][0]}: done", flush=True)

        # What each stage costs on its own (no model).
        ds = tf.data.Dataset.from_tensor_slices(paths).map(
            lambda p: tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(p), channels=3), (size, size), antialias=True),
            num_parallel_calls=tf.data.AUTOTUNE).batch(batch)
        stages = [("decode+resize: TensorFlow decode_jpeg (tf.data, AUTOTUNE)", count_rate(ds, n), "full decode")]
        started = now()
        open_cache(paths, size, tempfile.mkdtemp(prefix="cache-", dir=args.workdir), workers=max(2, cores))
        stages.append(("decode+resize: scenetune cache build (DCT scaling in 8ths)", rate(n, started),
                       f"{max(2, cores)} threads, EXIF/CMYK-correct"))
        started = now()
        check_dataset(root, "mit67")
        stages.append(("scenetune data check (decode at 1/8 scale)", rate(n, started),
                       "once per sweep, in the driver"))
        warm = cached_dataset(cache, paths, labels, batch)
        stages.append(("augment only: TensorFlow ImageProjectiveTransformV3",
                       count_rate(warm.map(lambda x, y: random_augment(x, augment), num_parallel_calls=tf.data.AUTOTUNE), n),
                       "float32 batches"))
        stages.append(("augment only: OpenCV warpAffine (scenetune's CPU path)",
                       count_rate(warm.map(lambda x, y: random_warp_uint8(x, augment),
                                           num_parallel_calls=tf.data.AUTOTUNE), n), "uint8 batches"))
        stages.append(("cache stream only: uint8 batches, no augmentation", count_rate(warm, n), "memmap gather"))

        memory = None
        if "memory" not in skip:
            memory = {mode: memory_of_two_trials(cache.folder, mode == "shared", batch) for mode in ("shared", "private")}
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
        for name in os.listdir(args.workdir):
            if name.startswith("cache-"):
                shutil.rmtree(os.path.join(args.workdir, name), ignore_errors=True)

    print_table(rows, stages, memory, n, size, epochs, cores, cache_bytes=n * size * size * 3)
    return 0


def print_table(rows, stages, memory, n, size, epochs, cores, cache_bytes) -> None:
    def columns(rates):  # epoch 1, epoch 2, median of epochs 2..N: (img/s, cpu ms) each
        warm = rates[1:]
        return [rates[0], rates[1], (float(np.median([r for r, _ in warm])), float(np.median([c for _, c in warm])))]

    names = ["e1", "e2", f"warm e2-{epochs}"]
    rows = sorted(rows, key=lambda row: (not row[0].startswith("model"), row[0]))  # ceiling, (a), (b), (c), (d)
    table = [(label, columns(rates), note) for label, rates, note in rows]
    base = next(([r for r, _ in cols] for label, cols, _ in table if label.startswith("(a)")), None)
    header = f"{'pipeline (model.fit)':<54}" + "".join(f"{f'img/s {c}':>17}" for c in names)
    if base:
        header += "".join(f"{f'x(a) {c}':>16}" for c in names)
    header += f"{'cpu ms warm':>12}"
    print(f"\n{n} JPEGs ~450 px -> {size} px, {epochs} epochs, {cores} cores, load average {os.getloadavg()[0]:.1f}"
          " at the end (cpu ms: CPU time per image, all threads)")
    print(header + "  note")
    print("-" * len(header))
    for label, cols, note in table:
        line = f"{label:<54}" + "".join(f"{r:>17.0f}" for r, _ in cols)
        if base:
            line += "".join(f"{r / b:>15.1f}x" for (r, _), b in zip(cols, base))
        line += f"{cols[2][1]:>12.2f}"
        print(f"{line}  {note}")
    print(f"\n{'stage alone (no model)':<54}{'img/s':>11}{'cpu ms':>11}")
    for label, (r, c), note in stages:
        print(f"{label:<54}{r:>11.0f}{c:>11.2f}  {note}")
    if memory:
        print(f"\nmemory of two concurrent trials that read all {n} cached images "
              f"({cache_bytes / 2**20:.0f} MiB of pixels), MiB per process:")
        print(f"{'':<44}{'RSS':>8}{'PSS':>8}{'USS':>8}{'peak RSS':>10}")
        for mode, label in (("shared", "one memory-mapped cache (scenetune)"),
                            ("private", "each its own decoded copy")):
            for i, m in enumerate(memory[mode]):
                print(f"{f'{label}, trial {i + 1}':<44}{m['rss']:>8.0f}{m['pss']:>8.0f}{m['uss']:>8.0f}"
                      f"{m['peak']:>10.0f}")
            total = sum(m["pss"] for m in memory[mode])
            print(f"{f'{label}: total PSS (what the node pays)':<44}{total:>16.0f}")
    if base:
        ratio = {label[:3]: [r / b for (r, _), b in zip(cols, base)] for label, cols, _ in table}
        print()
        for label, key, column, goal in (("(c) epoch 1 (cold) >= 4x (a)", "(c)", 0, 4),
                                         ("(c) warm >= 10x (a)", "(c)", 2, 10),
                                         ("(d) warm >= 50x (a)", "(d)", 2, 50)):
            if key in ratio:
                value = ratio[key][column]
                print(f"goal {label:<32} {value:6.1f}x  {'met' if value >= goal else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
