"""Hand-made ONNX seeds for the onnx fuzz target: one small model per importer branch (ops,
attributes, constant folding, tensor encodings) that the torch-exported seeds do not reach.

Run from the repository root (needs the onnx and numpy packages, fixed random seed):
    python fuzz/make_onnx_seeds.py fuzz/corpus/onnx
"""
import sys

import numpy as np
from onnx import helper as h, numpy_helper as nh, TensorProto as T

out = sys.argv[1]
rng = np.random.default_rng(0)
def w(*shape, dtype=np.float32): return rng.standard_normal(shape).astype(dtype)
def init(name, arr): return nh.from_array(np.asarray(arr), name)
def fdata(name, arr):  # float_data encoding instead of raw_data
    arr = np.asarray(arr, np.float32); return h.make_tensor(name, T.FLOAT, arr.shape, arr.flatten().tolist())
def idata(name, arr):
    arr = np.asarray(arr, np.int64); return h.make_tensor(name, T.INT64, arr.shape, arr.flatten().tolist())
def save(name, nodes, inits, in_shape, out_shape, opset=13, batch="N"):
    x = h.make_tensor_value_info("x", T.FLOAT, [batch] + list(in_shape))
    y = h.make_tensor_value_info("y", T.FLOAT, [batch] + list(out_shape))
    g = h.make_graph(nodes, name, [x], [y], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name="klrp-seeds")
    open(f"{out}/hand_{name}.onnx", "wb").write(m.SerializeToString())

C, H, W = 2, 6, 6
def head(src, n_in):  # Flatten + Gemm to 3 classes
    return ([h.make_node("Flatten", [src], ["f"], axis=1),
             h.make_node("Gemm", ["f", "hw", "hb"], ["y"], transB=1)],
            [init("hw", w(3, n_in)), init("hb", w(3))])

# Conv variants
for pad in ["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET"]:
    kw = dict(kernel_shape=[3, 3], strides=[2, 2])
    if pad == "NOTSET": kw["pads"] = [1, 0, 1, 0]
    kw["auto_pad"] = pad
    n = {"SAME_UPPER": 3, "SAME_LOWER": 3, "VALID": 2, "NOTSET": 3}[pad]
    m = {"SAME_UPPER": 3, "SAME_LOWER": 3, "VALID": 2, "NOTSET": 2}[pad]
    hn, hi = head("r", 4 * n * m)
    save(f"conv_{pad.lower()}", [h.make_node("Conv", ["x", "cw", "cb"], ["c"], **kw),
                                  h.make_node("Relu", ["c"], ["r"])] + hn,
         [init("cw", w(4, C, 3, 3)), init("cb", w(4))] + hi, [C, H, W], [3])
hn, hi = head("c", 4 * 2 * 2)
save("conv_group_dilation_nobias", [h.make_node("Conv", ["x", "cw"], ["c"], group=2, dilations=[2, 2], kernel_shape=[2, 2], strides=[1, 1])] + hn,
     [init("cw", w(4, 1, 2, 2))] + hi, [C, 4, 4], [3])
hn, hi = head("c", 4 * 1 * 1)
save("conv_1d_kernel_float_data", [h.make_node("Conv", ["x", "cw", "cb"], ["c"])] + hn,
     [fdata("cw", w(4, C, 3, 3)), fdata("cb", w(4))] + hi, [C, 3, 3], [3])
# Pools
hn, hi = head("p", C * 3 * 3)
save("maxpool_ceil_pads", [h.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0], ceil_mode=1)] + hn, hi, [C, H, W], [3], opset=12)
save("maxpool_storage_order", [h.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2], storage_order=1)] + hn, hi, [C, H, W], [3], opset=12)
save("maxpool_indices", [h.make_node("MaxPool", ["x"], ["p", "idx"], kernel_shape=[2, 2], strides=[2, 2])] + hn, hi, [C, H, W], [3], opset=12)
save("avgpool_include_pad", [h.make_node("AveragePool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)] + hn, hi, [C, H, W], [3], opset=19)
save("avgpool_same_upper", [h.make_node("AveragePool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER")] + hn, hi, [C, H, W], [3], opset=11)
hn, hi = head("p", C)
save("global_avgpool", [h.make_node("GlobalAveragePool", ["x"], ["p"])] + hn, hi, [C, H, W], [3])
# BatchNormalization
hn, hi = head("b", C * H * W)
bn = [init("s", w(C)), init("bb", w(C)), init("m", w(C)), init("v", np.abs(w(C)) + 0.5)]
save("batchnorm_opset9_spatial", [h.make_node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["b"], epsilon=1e-3, spatial=1)] + hn, bn + hi, [C, H, W], [3], opset=9)
save("batchnorm_training_attr", [h.make_node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["b"], training_mode=0, momentum=0.9)] + hn, bn + hi, [C, H, W], [3], opset=15)
save("batchnorm_training_on", [h.make_node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["b"], training_mode=1)] + hn, bn + hi, [C, H, W], [3], opset=15)
# Dense variants
save("gemm_alpha_beta", [h.make_node("Gemm", ["x", "gw", "gb"], ["y"], alpha=0.5, beta=2.0, transB=0)],
     [init("gw", w(8, 3)), init("gb", w(1, 3))], [8], [3])
save("gemm_no_bias_transB", [h.make_node("Gemm", ["x", "gw"], ["y"], transB=1)], [init("gw", w(3, 8))], [8], [3])
save("gemm_transA", [h.make_node("Gemm", ["x", "gw", "gb"], ["y"], transA=1)], [init("gw", w(8, 3)), init("gb", w(3))], [8], [3])
save("matmul_add_bias_first", [h.make_node("MatMul", ["x", "mw"], ["z"]), h.make_node("Add", ["mb", "z"], ["y"])],
     [init("mw", w(8, 3)), init("mb", w(3))], [8], [3])
save("matmul_add_double", [h.make_node("MatMul", ["x", "mw"], ["z"]), h.make_node("Add", ["z", "mb"], ["y"])],
     [init("mw", w(8, 3, dtype=np.float64)), init("mb", w(3, dtype=np.float16))], [8], [3])
save("matmul_add_activation", [h.make_node("MatMul", ["x", "mw"], ["z"]), h.make_node("Relu", ["x"], ["x2"]), h.make_node("Add", ["z", "x2"], ["y"])],
     [init("mw", w(8, 8))], [8], [8])
# Dropout, Softmax, Identity
for opset, tm in [(12, 0), (13, 1), (7, None)]:
    ins = ["x"] if tm is None else ["x", "ratio", "tm"]
    inits = [] if tm is None else [init("ratio", np.array(0.3, np.float32)), init("tm", np.array(bool(tm)))]
    save(f"dropout_opset{opset}", [h.make_node("Dropout", ins, ["d"]), h.make_node("Identity", ["d"], ["i"]),
                                   h.make_node("Gemm", ["i", "gw"], ["g"]), h.make_node("Softmax", ["g"], ["y"], axis=1)],
         inits + [init("gw", w(8, 3))], [8], [3], opset=opset)
save("logsoftmax_middle", [h.make_node("LogSoftmax", ["x"], ["s"]), h.make_node("Gemm", ["s", "gw"], ["y"])], [init("gw", w(8, 3))], [8], [3])
# Constant folding: the legacy torch flatten (Shape, Gather, Unsqueeze, Concat, Reshape), both Unsqueeze forms
for opset in [11, 13]:
    nodes = [h.make_node("Shape", ["x"], ["sh"]),
             h.make_node("Constant", [], ["zero"], value=h.make_tensor("zv", T.INT64, [], [0])),
             h.make_node("Gather", ["sh", "zero"], ["n"], axis=0)]
    if opset == 11: nodes.append(h.make_node("Unsqueeze", ["n"], ["n1"], axes=[0]))
    else: nodes.append(h.make_node("Unsqueeze", ["n", "ax0"], ["n1"]))
    nodes += [h.make_node("Constant", [], ["m1"], value_ints=[-1]) if opset >= 12 else h.make_node("Constant", [], ["m1"], value=h.make_tensor("mv", T.INT64, [1], [-1])),
              h.make_node("Concat", ["n1", "m1"], ["shape2"], axis=0),
              h.make_node("Reshape", ["x", "shape2"], ["f"]),
              h.make_node("Gemm", ["f", "gw"], ["y"])]
    save(f"legacy_flatten_opset{opset}", nodes, [init("gw", w(C * H * W, 3))] + ([init("ax0", np.array([0], np.int64))] if opset == 13 else []), [C, H, W], [3], opset=opset)
# Shape with start/end (opset 15), Slice (attr form opset 9 and input form with axes/steps), Squeeze, Cast
save("shape_start_end_slice_cast", [
    h.make_node("Shape", ["x"], ["sh"], start=0, end=1),
    h.make_node("Cast", ["shape_c"], ["shf"], to=T.FLOAT), h.make_node("Cast", ["shf"], ["shi"], to=T.INT64),
    h.make_node("Cast", ["shi"], ["shb"], to=T.BOOL), h.make_node("Cast", ["shb"], ["shi2"], to=T.INT64),
    h.make_node("Slice", ["shi", "st", "en", "ax", "stp"], ["tail"]),
    h.make_node("Concat", ["sh", "tail"], ["shape2"], axis=-1),
    h.make_node("Reshape", ["x", "shape2"], ["f"]), h.make_node("Gemm", ["f", "gw"], ["y"])],
    [idata("shape_c", [7, 5, C * H * W]), idata("st", [-1]), idata("en", [9223372036854775807]), idata("ax", [0]), idata("stp", [1]),
     init("gw", w(C * H * W, 3))], [C, H, W], [3], opset=15)
save("slice_attr_squeeze_attr", [
    h.make_node("Shape", ["x"], ["sh"]),
    h.make_node("Slice", ["sh"], ["s0"], starts=[0], ends=[1], axes=[0]),
    h.make_node("Constant", [], ["k"], value=h.make_tensor("kv", T.INT64, [1, 1], [-1])),
    h.make_node("Squeeze", ["k"], ["k1"], axes=[1]),
    h.make_node("Concat", ["s0", "k1"], ["shape2"], axis=0),
    h.make_node("Reshape", ["x", "shape2"], ["f"]), h.make_node("Gemm", ["f", "gw"], ["y"])],
    [init("gw", w(C * H * W, 3))], [C, H, W], [3], opset=9)
save("squeeze_input_gather_vector", [
    h.make_node("Shape", ["x"], ["sh"]),
    h.make_node("Gather", ["sh", "idx"], ["g"], axis=0),
    h.make_node("Constant", [], ["k"], value=h.make_tensor("kv", T.INT64, [1, 1], [-1])),
    h.make_node("Squeeze", ["k", "sqax"], ["k1"]),
    h.make_node("Concat", ["g", "k1"], ["shape2"], axis=0),
    h.make_node("Reshape", ["x", "shape2"], ["f"], allowzero=0), h.make_node("Gemm", ["f", "gw"], ["y"])],
    [idata("idx", [0]), idata("sqax", [0]), init("gw", w(C * H * W, 3))], [C, H, W], [3], opset=14)
save("reshape_zero_allowzero", [h.make_node("Reshape", ["x", "s"], ["f"], allowzero=1), h.make_node("Gemm", ["f", "gw"], ["y"])],
     [idata("s", [0, -1]), init("gw", w(C * H * W, 3))], [C, H, W], [3], opset=14)
save("reshape_zero", [h.make_node("Reshape", ["x", "s"], ["f"]), h.make_node("Gemm", ["f", "gw"], ["y"])],
     [idata("s", [0, -1]), init("gw", w(C * H * W, 3))], [C, H, W], [3], opset=14)
for axis in [0, 2, -1]:
    n_in = {0: None, 2: H * W, -1: W}[axis]
    save(f"flatten_axis{axis}", [h.make_node("Flatten", ["x"], ["f"], axis=axis), h.make_node("Gemm", ["f", "gw"], ["y"])],
         [init("gw", w(n_in or C * H * W, 3))], [C, H, W], [3])
save("constants_of_every_kind", [
    h.make_node("Constant", [], ["a"], value_float=1.5), h.make_node("Constant", [], ["b"], value_floats=[1.0, 2.0]),
    h.make_node("Constant", [], ["c"], value_int=3), h.make_node("Constant", [], ["d"], value_ints=[1, 8]),
    h.make_node("Reshape", ["x", "d"], ["f"]), h.make_node("Gemm", ["f", "gw"], ["y"])], [init("gw", w(8, 3))], [8], [3], opset=13)
# Fixed batch sizes and int32/float16 tensors
save("fixed_batch_2", [h.make_node("Gemm", ["x", "gw", "gb"], ["y"])], [init("gw", w(8, 3)), init("gb", w(3))], [8], [3], batch=2)
save("fixed_batch_1_fp16", [h.make_node("Gemm", ["x", "gw", "gb"], ["y"])], [init("gw", w(8, 3, dtype=np.float16)), init("gb", w(3, dtype=np.float16))], [8], [3], batch=1)
save("unknown_op", [h.make_node("Sigmoid", ["x"], ["y"])], [], [8], [8])
# Branches the corpus had not reached after ~100 M executions (found with fuzz/reached_lines.py).
# Refusals first: output or input too large, a symbolic feature dimension, attribute lists of
# the wrong length, an Add with no layer to take its bias, biases of the wrong shape, folding
# errors (Cast of the batch size to float, Unsqueeze axes out of range or repeated, Squeeze of a
# dimension that is not 1, a Slice of a matrix or with step 0), Constants missing their value.
def gemm_tail(src="x"): return [h.make_node("Gemm", [src, "gw"], ["y"])], [init("gw", w(8, 3))]
def with_consts(name, const_nodes, inits=(), opset=13):  # constant folding beside an MLP
    tail, tinits = gemm_tail()
    save(name, const_nodes + tail, list(inits) + tinits, [8], [3], opset=opset)
save("conv_output_too_large", [h.make_node("Conv", ["x", "cw"], ["y"], pads=[9000] * 4)],
     [init("cw", w(1, 1, 1, 1))], [1, 1, 1], [1, 18001, 18001])
save("input_too_large", gemm_tail()[0], gemm_tail()[1], [20000, 20000], [3])
x = h.make_tensor_value_info("x", T.FLOAT, ["N", "C", 8])
g = h.make_graph(gemm_tail()[0], "symbolic", [x], [h.make_tensor_value_info("y", T.FLOAT, ["N", 3])], gemm_tail()[1])
open(f"{out}/hand_input_symbolic_dim.onnx", "wb").write(
    h.make_model(g, opset_imports=[h.make_opsetid("", 13)], producer_name="klrp-seeds").SerializeToString())
save("conv_three_strides", [h.make_node("Conv", ["x", "cw"], ["y"], strides=[1, 1, 1])], [init("cw", w(1, C, 3, 3))], [C, H, W], [1, 4, 4])
save("conv_two_pads", [h.make_node("Conv", ["x", "cw"], ["y"], pads=[1, 1])], [init("cw", w(1, C, 3, 3))], [C, H, W], [1, 6, 6])
save("add_constant_first", [h.make_node("Add", ["x", "c"], ["a"])] + gemm_tail("a")[0], [init("c", w(8))] + gemm_tail()[1], [8], [3])
save("gemm_add_wrong_shape", [h.make_node("Gemm", ["x", "gw"], ["g"]), h.make_node("Add", ["g", "c"], ["y"])],
     [init("gw", w(8, 3)), init("c", w(4))], [8], [3])
save("gemm_add_column_bias", [h.make_node("Gemm", ["x", "gw"], ["g"]), h.make_node("Add", ["g", "c"], ["y"])],
     [init("gw", w(8, 3)), init("c", w(3, 1))], [8], [3])
save("conv_add_wrong_shape", [h.make_node("Conv", ["x", "cw"], ["c0"]), h.make_node("Add", ["c0", "c"], ["y"])],
     [init("cw", w(3, C, 3, 3)), init("c", w(4, 1, 1))], [C, H, W], [3, 4, 4])
with_consts("cast_batch_to_float", [h.make_node("Shape", ["x"], ["sh"]), h.make_node("Cast", ["sh"], ["shf"], to=T.FLOAT)])
with_consts("unsqueeze_axis_out_of_range", [h.make_node("Unsqueeze", ["k"], ["k1"], axes=[5])], [idata("k", [1, 2])], opset=11)
with_consts("unsqueeze_duplicate_axes", [h.make_node("Unsqueeze", ["k"], ["k1"], axes=[2, 2])], [idata("k", [1, 2])], opset=11)
with_consts("squeeze_axis_not_one", [h.make_node("Squeeze", ["k"], ["k1"], axes=[0])], [idata("k", [1, 2])], opset=11)
with_consts("slice_of_matrix", [h.make_node("Slice", ["k"], ["k1"], starts=[0], ends=[1], axes=[0])], [idata("k", [[1, 2], [3, 4]])], opset=9)
with_consts("slice_step_zero", [h.make_node("Slice", ["k", "st", "en", "ax", "stp"], ["k1"])],
            [idata("k", [1, 2, 3]), idata("st", [0]), idata("en", [3]), idata("ax", [0]), idata("stp", [0])])
for kind, t in [("value_float", h.AttributeProto.FLOAT), ("value_int", h.AttributeProto.INT)]:
    c = h.make_node("Constant", [], ["k"])
    c.attribute.append(h.AttributeProto(name=kind, type=t))  # the attribute without its value
    with_consts(f"constant_{kind}_without_value", [c])
# Then branches that import: a Reshape to the same shape (batch 0 and a fixed batch), a bias
# added to a Conv as [1, C, 1, 1] and to a Gemm as a scalar, folding on float constants (Cast,
# Gather, Slice, Concat), an Identity of a constant, Squeeze without axes, Slices with a
# negative step, of an empty vector and with a step that overflows, raw bfloat16, uint16 and int8
# initializers.
for name, batch_dim, batch in [("reshape_same_shape", 0, "N"), ("reshape_same_shape_fixed_batch", 2, 2)]:
    hn, hi = head("r", C * H * W)
    save(name, [h.make_node("Reshape", ["x", "s"], ["r"])] + hn, [idata("s", [batch_dim, C, H, W])] + hi, [C, H, W], [3], batch=batch)
hn, hi = head("a", 3 * 4 * 4)
save("conv_add_channel_bias", [h.make_node("Conv", ["x", "cw"], ["c0"]), h.make_node("Add", ["c", "c0"], ["a"])] + hn,
     [init("cw", w(3, C, 3, 3)), init("c", w(1, 3, 1, 1))] + hi, [C, H, W], [3])
save("gemm_add_scalar", [h.make_node("Gemm", ["x", "gw"], ["g"]), h.make_node("Add", ["g", "c"], ["y"])],
     [init("gw", w(8, 3)), init("c", np.array(0.5, np.float32))], [8], [3])
with_consts("float_constant_folding", [
    h.make_node("Cast", ["f"], ["f2"], to=T.FLOAT), h.make_node("Gather", ["f2", "i"], ["f3"], axis=0),
    h.make_node("Slice", ["f2", "st", "en"], ["f4"]), h.make_node("Concat", ["f3", "f4"], ["f5"], axis=0)],
    [init("f", np.array([1.5, -2.0, 3.0], np.float32)), idata("i", [2, 0]), idata("st", [1]), idata("en", [3])])
with_consts("identity_of_constant", [h.make_node("Identity", ["k"], ["k1"])], [idata("k", [1, 2])])
with_consts("squeeze_without_axes", [h.make_node("Squeeze", ["k"], ["k1"])], [idata("k", [[1, 2]])])
with_consts("slice_negative_empty_overflowing", [
    h.make_node("Slice", ["k", "st", "en", "ax", "neg"], ["k1"]),
    h.make_node("Slice", ["e", "st", "en"], ["k2"]),
    h.make_node("Slice", ["k", "one", "four", "ax", "big"], ["k3"])],
    [idata("k", [1, 2, 3, 4]), idata("e", np.zeros(0, np.int64)), idata("st", [-1]), idata("en", [-9]), idata("ax", [0]),
     idata("neg", [-2]), idata("one", [1]), idata("four", [4]), idata("big", [2**63 - 1])])
bf16 = h.make_tensor("b", T.BFLOAT16, [2], vals=np.array([0x3fc0, 0xc000], "<u2").tobytes(), raw=True)
with_consts("raw_bfloat16_uint16_int8", [], [bf16, init("u", np.array([1, 65535], np.uint16)), init("i8", np.array([-128, 127], np.int8))])
# Session 8 (issue #21): preprocessing metadata (klrp.mean/std/resize/crop, valid, grayscale and
# refused) and a tensor in an external data file. The fuzz check loads every input from a file in
# a directory that holds `w.bin` (1 KiB: 256 little-endian f32), so the external seed imports there.
def save_meta(name, meta, c=3):
    hn, hi = head("r", 4 * 3 * 3)
    nodes = [h.make_node("Conv", ["x", "cw", "cb"], ["c0"], kernel_shape=[2, 2], strides=[2, 2]),
             h.make_node("Relu", ["c0"], ["r"])] + hn
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", c, H, W])
    y = h.make_tensor_value_info("y", T.FLOAT, ["N", 3])
    g = h.make_graph(nodes, name, [x], [y], [init("cw", w(4, c, 2, 2)), init("cb", w(4))] + hi)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)], producer_name="klrp-seeds")
    h.set_model_props(m, meta)
    open(f"{out}/hand_{name}.onnx", "wb").write(m.SerializeToString())
save_meta("metadata_preprocess", {"klrp.mean": "0.5,0.4,0.3", "klrp.std": "0.25", "klrp.resize": "8", "klrp.crop": "6,6", "license": "MIT"})
save_meta("metadata_grayscale", {"klrp.mean": "0.5", "klrp.std": "0.25", "klrp.resize": "none", "klrp.crop": "6"}, c=1)
save_meta("metadata_mean_without_std", {"klrp.mean": "0.5"})
ext = h.make_tensor_value_info("x", T.FLOAT, ["N", 8])
gw = T(name="gw", data_type=T.FLOAT, dims=[8, 3])
gw.data_location = T.EXTERNAL
for k, v in [("location", "w.bin"), ("offset", "64"), ("length", "96")]:
    e = gw.external_data.add(); e.key = k; e.value = v
g = h.make_graph([h.make_node("Gemm", ["x", "gw"], ["y"])], "external", [ext],
                 [h.make_tensor_value_info("y", T.FLOAT, ["N", 3])], [gw])
m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)], producer_name="klrp-seeds")
open(f"{out}/hand_external_data.onnx", "wb").write(m.SerializeToString())
print("ok")
