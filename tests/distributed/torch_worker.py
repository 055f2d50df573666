"""PyTorch: a DDP training step in 2 processes (gloo backend) vs one process on the global batch.

Run by test_distributed.py as `python -m tests.distributed.torch_worker OUT.npz`. The reference
runs first, with no process group; then 2 processes (this module again, with a rank) each take
half the batch through a `DistributedDataParallel` model (its gradient averaging, per-replica
mean loss), once with `synchronized=True` and once with False.
"""

import datetime
import faulthandler
import gc
import os
import socket
import subprocess
import sys
import weakref

import keras  # noqa: I001  (before anything that imports TensorFlow)
import numpy as np
import torch
import torch.distributed as dist

from tests.distributed import case

PROCESSES = 2


def train_step(model, module, inputs, targets):
    """Outputs, gradients, then inference outputs; `module` is the model or its DDP wrapper.

    The inference call goes to the model itself: a second DDP forward would start DDP's
    bucket rebuilding, a collective of its own.
    """
    outputs = module(inputs, training=True)
    targets = torch.as_tensor(targets)
    loss = torch.sum(torch.square(outputs - targets)) / targets.shape[0] + sum(model.losses)
    loss.backward()
    gradients = [v.value.grad.detach().clone() for v in model.trainable_variables]
    with torch.no_grad():
        inference = model(inputs, training=False)
    return outputs.detach(), gradients, inference


def record(model, outputs, gradients, inference):
    result = {"outputs": keras.ops.convert_to_numpy(outputs), "inference": keras.ops.convert_to_numpy(inference)}
    result.update({f"gradients/{v.path}": g.numpy() for v, g in zip(model.trainable_variables, gradients)})
    result.update({f"state/{k}": v for k, v in case.state(model).items()})
    return result


def gather(tensor):
    parts = [torch.empty_like(tensor) for _ in range(PROCESSES)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def distributed_step(rank, path, synchronized):
    """One DDP training step on this rank's shard; the results as numpy arrays, and a weak
    reference to the DDP wrapper, which must be gone once this frame is."""
    inputs, targets = case.global_batch()
    inputs, targets = case.shard(inputs, targets, rank, PROCESSES)
    model = case.build_model(synchronized)
    model.set_weights(list(np.load(f"{path}.initial.npz").values()))
    module = torch.nn.parallel.DistributedDataParallel(model)
    outputs, gradients, inference = train_step(model, module, inputs, targets)
    return record(model, gather(outputs), gradients, gather(inference)), weakref.ref(module)


def rank_main(rank, port, path, synchronized):
    faulthandler.dump_traceback_later(180, exit=True)  # a hung collective says where, then exits
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=PROCESSES,
        timeout=datetime.timedelta(seconds=120),
    )
    result, ddp = distributed_step(rank, path, synchronized)
    # DDP's reducer must be freed while both ranks still hold the group: freed after
    # destroy_process_group, it can block forever. `del module` is not enough, as something
    # in the step reads the frame's locals, whose snapshot keeps the wrapper alive until the
    # frame ends; hence the step runs in its own frame.
    gc.collect()
    if ddp() is not None:
        raise RuntimeError("the DistributedDataParallel wrapper outlived its training step")
    result["replicas"] = np.array(dist.get_world_size())
    if rank == 0:
        np.savez(f"{path}.{'distributed' if synchronized else 'unsynchronized'}.npz", **result)
    dist.barrier()
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(path):
    inputs, targets = case.global_batch()
    keras.utils.set_random_seed(0)
    model = case.build_model()
    np.savez(f"{path}.initial.npz", *model.get_weights())
    reference = record(model, *train_step(model, model, inputs, targets))
    reference["replicas"] = np.array(1)
    results = {"reference": reference}
    for name in ("distributed", "unsynchronized"):
        port = str(free_port())
        ranks = [
            subprocess.Popen([sys.executable, "-m", "tests.distributed.torch_worker", path, str(rank), port, name])
            for rank in range(PROCESSES)
        ]
        codes = [process.wait(timeout=300) for process in ranks]
        assert codes == [0] * PROCESSES, f"the {name} ranks exited with {codes}"
        results[name] = dict(np.load(f"{path}.{name}.npz"))
        os.remove(f"{path}.{name}.npz")
    os.remove(f"{path}.initial.npz")
    np.savez(path, **{f"{name}/{k}": v for name, result in results.items() for k, v in result.items()})


if __name__ == "__main__":
    if len(sys.argv) == 2:
        main(sys.argv[1])
    else:  # one rank: OUT RANK PORT RUN
        rank_main(int(sys.argv[2]), sys.argv[3], sys.argv[1], sys.argv[4] == "distributed")
