"""PyTorch reference trainer: the same network, data, batch size and thread count as `trainer`.

Prints one JSON object per epoch (training seconds, samples per second, test accuracy, wall
seconds since the run started) and a final one with the training seconds it took to reach the
target accuracy. Training seconds count the optimisation steps only, as `trainer`'s
metrics.jsonl does; the wall seconds count data loading and evaluations too, as its
`elapsed_seconds` do.

    python benchmarks/reference/train_pytorch.py --threads 2 --batch-size 128 --epochs 6

Settings follow trainer/config.toml (AdamW, one-cycle schedule peaking at 0.004 after 20 % of
the steps, weight decay 1e-4, dropout 0.25) except augmentation: the reference trains on the
plain images, its fastest way to 99 %.
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F

import mnist_data
import nets


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=6, help="at most this many epochs")
    p.add_argument("--learning-rate", type=float, default=0.004, help="peak of the schedule")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--target", type=float, default=0.99, help="test accuracy to reach")
    p.add_argument("--stop-at-target", action="store_true", help="stop once target is reached")
    p.add_argument("--net", choices=["cnn", "classic"], default="cnn")
    p.add_argument("--seed", type=int, default=1998)
    return p.parse_args()


def evaluate(net, images, labels, batch=1000):
    net.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            correct += (net(images[i : i + batch]).argmax(1) == labels[i : i + batch]).sum()
    net.train()
    return int(correct) / len(images)


def main():
    run_started = time.perf_counter()
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    train_x, train_y = mnist_data.load("train")
    test_x, test_y = mnist_data.load("t10k")
    net = nets.DigitCnn() if args.net == "cnn" else nets.ClassicNet()
    steps_per_epoch = -(-len(train_x) // args.batch_size)
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, args.learning_rate, total_steps=args.epochs * steps_per_epoch, pct_start=0.2
    )
    training_seconds, reached = 0.0, None
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(train_x))
        started = time.perf_counter()
        for i in range(0, len(order), args.batch_size):
            batch = order[i : i + args.batch_size]
            loss = F.cross_entropy(net(train_x[batch]), train_y[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
        seconds = time.perf_counter() - started
        training_seconds += seconds
        accuracy = evaluate(net, test_x, test_y)
        if reached is None and accuracy >= args.target:
            reached = training_seconds
        print(json.dumps({
            "epoch": epoch,
            "seconds": round(seconds, 3),
            "samples_per_second": round(len(train_x) / seconds, 1),
            "test_accuracy": accuracy,
            "elapsed_seconds": round(time.perf_counter() - run_started, 3),
        }), flush=True)
        if reached is not None and args.stop_at_target:
            break
    print(json.dumps({
        "target": args.target,
        "seconds_to_target": None if reached is None else round(reached, 3),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }), flush=True)


if __name__ == "__main__":
    main()
