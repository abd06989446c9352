"""SuperNNova's "vanilla" network as an ONNX graph, built from its state dict.

Fink's SuperNNova models (``fink_science/data/models/snn_models/*/model.pt``) are all the
same architecture (``supernnova.training.vanilla_rnn.VanillaRNN``, checked from each
model's ``cli_args.json`` when it is converted): a stacked LSTM over the light curve's
epochs, bidirectional, whose outputs are averaged over the valid epochs of each light
curve (``rnn_output_option = "mean"``), then one linear layer and a softmax. Dropout is
off at inference. ONNX has the same LSTM operator, so the graph is the weights laid out in
ONNX's order, and onnxruntime runs it:

* torch stores the gates of ``weight_ih_l{k}`` as (input, forget, cell, output); ONNX wants
  (input, output, forget, cell), so each weight and bias is re-ordered by blocks of
  ``hidden_size`` rows;
* ONNX's bias is ``[W_b, R_b]`` (torch's ``bias_ih`` then ``bias_hh``);
* padded epochs: the ``sequence_lens`` input makes ONNX's LSTM stop each light curve at
  its own length (the reverse direction starts at its last valid epoch) and write zeros
  past it, as torch's packed sequences do, so the sum over epochs divided by the length
  is the mean over the valid epochs.

Graph inputs: ``x`` float32 ``[epochs, light curves, features]`` and ``lengths`` int32
``[light curves]``; output ``probabilities`` float32 ``[light curves, classes]``.

Only :func:`build` needs the ``onnx`` package, which the conversion environment has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: ONNX gate order expressed as torch's gate blocks (torch: i, f, g, o; ONNX: i, o, f, c)
_TORCH_TO_ONNX_GATES = (0, 3, 1, 2)
OPSET = 17


def _gates(weight: np.ndarray, hidden: int) -> np.ndarray:
    blocks = [weight[g * hidden : (g + 1) * hidden] for g in range(4)]
    return np.concatenate([blocks[g] for g in _TORCH_TO_ONNX_GATES], axis=0)


def lstm_weights(
    state: Mapping[str, np.ndarray], layer: int, hidden: int, bidirectional: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX ``W``, ``R``, ``B`` of one torch LSTM layer (directions stacked first)."""
    suffixes = ["", "_reverse"] if bidirectional else [""]
    w, r, b = [], [], []
    for suffix in suffixes:
        key = f"rnn_layer.{{}}_l{layer}{suffix}"
        w.append(_gates(state[key.format("weight_ih")], hidden))
        r.append(_gates(state[key.format("weight_hh")], hidden))
        b.append(
            np.concatenate(
                [
                    _gates(state[key.format("bias_ih")], hidden),
                    _gates(state[key.format("bias_hh")], hidden),
                ]
            )
        )
    return (
        np.stack(w).astype(np.float32),
        np.stack(r).astype(np.float32),
        np.stack(b).astype(np.float32),
    )


def check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse a model this graph does not reproduce (settings of its ``cli_args.json``)."""
    wanted = {"model": "vanilla", "layer_type": "lstm", "rnn_output_option": "mean"}
    found = {k: settings.get(k) for k in wanted}
    if found != wanted:
        raise ValueError(f"SuperNNova model settings {found}: only {wanted} is supported")


def build(state: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> Any:
    """The ONNX ``ModelProto`` of a SuperNNova vanilla model (state dict + cli_args)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    check_settings(settings)
    hidden = int(settings["hidden_dim"])
    layers = int(settings["num_layers"])
    bidirectional = bool(settings["bidirectional"])
    directions = 2 if bidirectional else 1
    n_features = state["rnn_layer.weight_ih_l0"].shape[1]
    n_classes = state["output_layer.weight"].shape[0]

    initializers = []
    nodes = []

    def constant(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(value, name))
        return name

    constant("seq_shape", np.array([0, 0, directions * hidden], dtype=np.int64))
    current = "x"
    for layer in range(layers):
        w, r, b = lstm_weights(state, layer, hidden, bidirectional)
        names = [constant(f"{p}{layer}", a) for p, a in (("W", w), ("R", r), ("B", b))]
        nodes.append(
            helper.make_node(
                "LSTM",
                [current, *names, "lengths"],
                [f"Y{layer}"],
                hidden_size=hidden,
                direction="bidirectional" if bidirectional else "forward",
            )
        )
        # Y is [epochs, directions, batch, hidden]; the next layer reads [epochs, batch,
        # directions * hidden] with the forward direction first, as torch concatenates
        nodes.append(
            helper.make_node("Transpose", [f"Y{layer}"], [f"Yt{layer}"], perm=[0, 2, 1, 3])
        )
        nodes.append(helper.make_node("Reshape", [f"Yt{layer}", "seq_shape"], [f"H{layer}"]))
        current = f"H{layer}"
    constant("time_axis", np.array([0], dtype=np.int64))
    nodes += [
        helper.make_node("ReduceSum", [current, "time_axis"], ["summed"], keepdims=0),
        helper.make_node("Cast", ["lengths"], ["lengths_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["lengths_f", "one_axis"], ["lengths_col"]),
        helper.make_node("Div", ["summed", "lengths_col"], ["mean"]),
        helper.make_node("Gemm", ["mean", "out_w", "out_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    constant("one_axis", np.array([1], dtype=np.int64))
    constant("out_w", state["output_layer.weight"].astype(np.float32))
    constant("out_b", state["output_layer.bias"].astype(np.float32))
    graph = helper.make_graph(
        nodes,
        "supernnova_vanilla",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["epochs", "batch", n_features]),
            helper.make_tensor_value_info("lengths", TensorProto.INT32, ["batch"]),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_classes])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by every onnxruntime since 1.10
    onnx.checker.check_model(model)
    return model
