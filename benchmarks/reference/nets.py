"""The networks of the PyTorch reference, and loading our weights into them.

`DigitCnn` is `shared`'s default "cnn" architecture (shared/src/network/mod.rs) written the usual
PyTorch way (NCHW, nn.Conv2d): 5x5 conv 1->16 pad 2, 2x2 max pool, ReLU, 5x5 conv 16->32, pool,
ReLU, fc 800->128, ReLU, dropout, fc 128->10. Ours pools before the ReLU; both orders give the
same values. `ClassicNet` is the network of PyTorch's own MNIST example, for reference.
"""

import torch
from torch import nn
import torch.nn.functional as F


class DigitCnn(nn.Module):
    """The same layers, widths and parameter count as shared's `cnn` (or, with the widths
    8, 16, 64, its `small`)."""

    def __init__(self, dropout=0.25, conv1=16, conv2=32, hidden=128):
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv1, 5, padding=2)
        self.conv2 = nn.Conv2d(conv1, conv2, 5)
        self.fc1 = nn.Linear(5 * 5 * conv2, hidden)
        self.fc2 = nn.Linear(hidden, 10)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(self.dropout(x))


class ClassicNet(nn.Module):
    """pytorch/examples mnist/main.py: conv 32, conv 64 (3x3), max pool, fc 9216->128, fc 10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return self.fc2(x)


def from_ours(tensors: dict) -> DigitCnn:
    """A `DigitCnn` holding the weights of our model.safetensors.

    Ours are patch-times-weights matrices over NHWC patches ordered (row, column, channel):
    conv weights are (out, kh * kw * in) and fc1 reads the (h, w, c) flattening. PyTorch wants
    (out, in, kh, kw) and a (c, h, w) flattening, so the axes are permuted, nothing else.
    """
    c1, c2, hidden = (tensors[k].shape[0] for k in ("conv1.weight", "conv2.weight", "fc1.weight"))
    net = DigitCnn(conv1=c1, conv2=c2, hidden=hidden)
    conv1 = tensors["conv1.weight"].reshape(c1, 5, 5, 1).permute(0, 3, 1, 2)
    conv2 = tensors["conv2.weight"].reshape(c2, 5, 5, c1).permute(0, 3, 1, 2)
    fc1 = tensors["fc1.weight"].reshape(hidden, 5, 5, c2).permute(0, 3, 1, 2)
    fc1 = fc1.reshape(hidden, 25 * c2)
    state = {
        "conv1.weight": conv1,
        "conv1.bias": tensors["conv1.bias"],
        "conv2.weight": conv2,
        "conv2.bias": tensors["conv2.bias"],
        "fc1.weight": fc1,
        "fc1.bias": tensors["fc1.bias"],
        "fc2.weight": tensors["fc2.weight"],
        "fc2.bias": tensors["fc2.bias"],
    }
    net.load_state_dict({k: v.contiguous() for k, v in state.items()})
    return net.eval()
