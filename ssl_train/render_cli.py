"""The renderer's command line: ``python -m ssl_train.render`` (or ``python -m ssl_train render``)
``--bench`` writes reports/render-bench.json and .md (scenes/s at 96 and 128 px); ``--gallery
reports/render-gallery.jpg`` a grid of RGB | depth | normals | contours.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch

from .errors import UserError
from .render import Scene, depth_picture, normals_picture, render
from .render_scenes import RenderConfig


def gallery(scene: Scene, n: int | None = None) -> torch.Tensor:
    """A grid (3, n·S, 4·S): per row one scene's RGB | depth | normals | contours."""
    n = n or scene.rgb.shape[0]
    cols = [scene.rgb[:n], depth_picture(scene.depth[:n]), normals_picture(scene.normals[:n]), scene.contours[:n].expand(-1, 3, -1, -1)]
    rows = torch.cat(cols, dim=3)  # (n, 3, S, 4S)
    return torch.cat(list(rows), dim=1).clamp(0, 1)


def save_jpeg(img: torch.Tensor, path: str | Path, max_bytes: int = 60_000, pad: int = 0) -> int:
    """Write (3, H, W) in [0, 1] as a JPEG of at most ``max_bytes`` (the highest quality that fits,
    from 90 down), or, for a ``.png`` path, as a lossless PNG (returns 0 then). Returns the quality used."""
    import io

    from PIL import Image

    arr = (img.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    pic = Image.fromarray(arr)
    if Path(path).suffix.lower() == ".png":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pic.save(path, format="PNG", optimize=True)
        return 0
    for q in range(90, 19, -5):
        buf = io.BytesIO()
        pic.save(buf, format="JPEG", quality=q, optimize=True, subsampling=0 if q >= 80 else 2)
        if buf.tell() <= max_bytes:
            break
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(buf.getvalue())
    return q


def bench(sizes: Sequence[int] = (96, 128), batch: int = 256, threads: Sequence[int] = (2, 1), device: str = "cpu", repeats: int = 7,
          seed: int = 0) -> dict:
    """Scenes per second of ``render`` (sampling + rasterising + labels), per thread count and image
    size: the median of ``repeats`` timed batches after two warm-up batches, with the conditions of
    the measurement (device, versions, the machine's load average before and after: the CPU may be
    shared). The torch thread setting is restored afterwards."""
    import os

    before = torch.get_num_threads()
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(seed)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    rows = []
    try:
        for n in threads:
            torch.set_num_threads(n)
            for s in sizes:
                cfg = RenderConfig(image_size=s)
                for _ in range(2):
                    render(cfg, batch, gen)
                times, cpu = [], []
                for _ in range(repeats):
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    t0, c0 = time.perf_counter(), time.process_time()
                    render(cfg, batch, gen)
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                times.sort()
                cpu.sort()
                med, cmed = times[len(times) // 2], cpu[len(cpu) // 2]
                rows.append({"threads": n, "image_size": s, "batch": batch, "scenes_per_s": round(batch / med, 1),
                             "best_scenes_per_s": round(batch / times[0], 1), "median_batch_s": round(med, 4),
                             "scenes_per_cpu_s": round(batch / cmed, 1) if cmed > 0 else None, "repeats": repeats})
    finally:
        torch.set_num_threads(before)
    return {
        "what": "ssl_train.render.render: sample scenes + rasterise RGB, depth, normals, contours (default RenderConfig)",
        "command": None,  # filled in by main
        "device": device if dev.type != "cuda" else torch.cuda.get_device_name(dev),
        "threads": list(threads),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before] if load_before else None,
        "load_average_after": [round(v, 2) for v in os.getloadavg()] if load_before else None,
        "target": "≥ 500 scenes/s at 96 px on the project's 2-core CPU (#30)",
        "results": rows,
        "config": asdict(RenderConfig()),
    }


def bench_markdown(rep: dict) -> str:
    """The benchmark as a short Markdown page."""
    lines = ["# Render benchmark (#30)", "",
             f"`{rep.get('command') or 'python -m ssl_train.render --bench'}` — {rep['what']}.", "",
             f"Device {rep['device']} ({rep['cpu_count']} CPUs), torch {rep['torch']}, Python {rep['python']}; "
             f"load average (1, 5, 15 min) before {rep['load_average_before']}, after {rep['load_average_after']}: the CPU is shared, "
             "other jobs may have run meanwhile.", "",
             "| threads | image size | batch | scenes/s (median) | best | median batch time | scenes per CPU-second |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rep["results"]:
        lines.append(f"| {r['threads']} | {r['image_size']} px | {r['batch']} | {r['scenes_per_s']:.0f} | {r['best_scenes_per_s']:.0f} "
                     f"| {r['median_batch_s'] * 1000:.0f} ms | {r.get('scenes_per_cpu_s') or 0:.0f} |")
    lines += ["", f"Target: {rep['target']}.", "",
              "Why two thread counts: the renderer is a few hundred tensor ops per batch, each an OpenMP parallel region. "
              "When another process keeps one of the two cores busy, two threads wait at every region's barrier for the "
              "descheduled one (and spin meanwhile, so CPU-seconds grow too): measured here 10× slower than one thread "
              "in that state (3.2 s vs 0.5 s for 256 scenes at 96 px), while on an idle machine two threads are faster. "
              "Render with one thread when the CPU is shared.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "python -m ssl_train.render") -> int:
    """``python -m ssl_train.render --bench`` (writes reports/render-bench.json and .md) and/or
    ``--gallery OUT`` (a JPEG grid: RGB | depth | normals | contours per scene)."""
    ap = argparse.ArgumentParser(prog=prog, description="Procedural flower scenes with depth, normals and contours.")
    ap.add_argument("--bench", action="store_true", help="measure scenes/s and write --bench-out .json and .md")
    ap.add_argument("--bench-out", default="reports/render-bench", help="path without extension (default reports/render-bench)")
    ap.add_argument("--sizes", default="96,128", help="image sizes to benchmark, px")
    ap.add_argument("--batch", type=int, default=256, help="scenes per rendered batch")
    ap.add_argument("--threads", default="2,1", help="torch intra-op thread counts to benchmark, comma-separated")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--gallery", "--out", dest="gallery", metavar="OUT",
                    help="write the gallery here: .jpg (JPEG, under --max-kb) or .png (e.g. reports/render-gallery.jpg)")
    ap.add_argument("--scenes", type=int, default=6, help="gallery rows")
    ap.add_argument("--size", type=int, default=128, help="gallery image size, px")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-kb", type=int, default=60, help="gallery size limit, KB (JPEG quality is lowered to fit)")
    args = ap.parse_args(argv)
    if not (args.bench or args.gallery):
        ap.error("nothing to do: give --bench and/or --gallery OUT")
    try:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: no CUDA device here; use --device cpu")
        try:
            threads = tuple(int(v) for v in str(args.threads).split(","))
        except ValueError:
            raise UserError(f"--threads {args.threads!r} must be comma-separated integers, e.g. 2,1") from None
        if args.batch < 1 or min(threads) < 1 or args.repeats < 1 or args.scenes < 1:
            raise UserError("--batch, --threads, --repeats and --scenes must be ≥ 1")
        if args.gallery and Path(args.gallery).suffix.lower() not in (".jpg", ".jpeg", ".png"):
            raise UserError(f"--gallery {args.gallery}: give a .jpg or .png file name, e.g. reports/render-gallery.jpg")
        if args.gallery:
            from .paths import check_output

            check_output(args.gallery, "--gallery")  # an unwritable place fails here, before rendering
            cfg = RenderConfig(image_size=args.size)
            cfg.validate()
            scene = render(cfg, args.scenes, torch.Generator(device=args.device).manual_seed(args.seed))
            q = save_jpeg(gallery(scene), args.gallery, args.max_kb * 1000)
            print(json.dumps({"gallery": args.gallery, "scenes": args.scenes, "size": args.size, "seed": args.seed, "format": "png" if q == 0 else f"jpeg quality {q}",
                              "bytes": Path(args.gallery).stat().st_size}))
        if args.bench:
            try:
                sizes = tuple(int(v) for v in args.sizes.split(","))
            except ValueError:
                raise UserError(f"--sizes {args.sizes!r} must be comma-separated integers, e.g. 96,128") from None
            for s in sizes:
                RenderConfig(image_size=s).validate()
            rep = bench(sizes, args.batch, threads, args.device, args.repeats, args.seed)
            rep["command"] = "python -m ssl_train.render " + " ".join(argv if argv is not None else sys.argv[1:])
            out = Path(args.bench_out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".json").write_text(json.dumps(rep, indent=2) + "\n")
            out.with_suffix(".md").write_text(bench_markdown(rep))
            print(json.dumps(rep["results"]))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
