//! A minimal ONNX (protobuf) writer for tests: hand-made models, valid and broken.
#![allow(dead_code)]

pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

pub fn len_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub fn int_field(out: &mut Vec<u8>, field: u64, v: i64) {
    key(out, field, 0);
    varint(out, v as u64);
}

pub fn float_field(out: &mut Vec<u8>, field: u64, v: f32) {
    key(out, field, 5);
    out.extend_from_slice(&v.to_le_bytes());
}

pub const FLOAT: i64 = 1;
pub const INT64: i64 = 7;
pub const FLOAT16: i64 = 10;

/// A float tensor with its data in `raw_data`.
pub fn tensor_raw(name: &str, dims: &[i64], v: &[f32]) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        int_field(&mut t, 1, d);
    }
    int_field(&mut t, 2, FLOAT);
    len_field(&mut t, 8, name.as_bytes());
    let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    len_field(&mut t, 9, &raw);
    t
}

/// A float tensor with its data in packed `float_data`.
pub fn tensor_floats(name: &str, dims: &[i64], v: &[f32]) -> Vec<u8> {
    let mut t = Vec::new();
    let mut packed = Vec::new();
    for &d in dims {
        varint(&mut packed, d as u64);
    }
    len_field(&mut t, 1, &packed);
    int_field(&mut t, 2, FLOAT);
    let data: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    len_field(&mut t, 4, &data);
    len_field(&mut t, 8, name.as_bytes());
    t
}

/// A float16 tensor in `raw_data` (values must be exactly representable).
pub fn tensor_f16(name: &str, dims: &[i64], bits: &[u16]) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        int_field(&mut t, 1, d);
    }
    int_field(&mut t, 2, FLOAT16);
    len_field(&mut t, 8, name.as_bytes());
    let raw: Vec<u8> = bits.iter().flat_map(|x| x.to_le_bytes()).collect();
    len_field(&mut t, 9, &raw);
    t
}

/// An int64 tensor in (unpacked) `int64_data`.
pub fn tensor_i64(name: &str, dims: &[i64], v: &[i64]) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        int_field(&mut t, 1, d);
    }
    int_field(&mut t, 2, INT64);
    for &x in v {
        int_field(&mut t, 7, x);
    }
    len_field(&mut t, 8, name.as_bytes());
    t
}

/// A float tensor marked as stored externally.
pub fn tensor_external(name: &str, dims: &[i64]) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        int_field(&mut t, 1, d);
    }
    int_field(&mut t, 2, FLOAT);
    len_field(&mut t, 8, name.as_bytes());
    let mut entry = Vec::new();
    len_field(&mut entry, 1, b"location");
    len_field(&mut entry, 2, b"weights.bin");
    len_field(&mut t, 13, &entry);
    int_field(&mut t, 14, 1);
    t
}

pub enum Attr<'a> {
    Int(&'a str, i64),
    Ints(&'a str, &'a [i64]),
    Float(&'a str, f32),
    Str(&'a str, &'a str),
    Tensor(&'a str, Vec<u8>),
}

fn attribute(a: &Attr) -> Vec<u8> {
    let mut out = Vec::new();
    match a {
        Attr::Int(n, v) => {
            len_field(&mut out, 1, n.as_bytes());
            int_field(&mut out, 3, *v);
            int_field(&mut out, 20, 2);
        }
        Attr::Ints(n, v) => {
            len_field(&mut out, 1, n.as_bytes());
            for &x in v.iter() {
                int_field(&mut out, 8, x);
            }
            int_field(&mut out, 20, 7);
        }
        Attr::Float(n, v) => {
            len_field(&mut out, 1, n.as_bytes());
            float_field(&mut out, 2, *v);
            int_field(&mut out, 20, 1);
        }
        Attr::Str(n, v) => {
            len_field(&mut out, 1, n.as_bytes());
            len_field(&mut out, 4, v.as_bytes());
            int_field(&mut out, 20, 3);
        }
        Attr::Tensor(n, t) => {
            len_field(&mut out, 1, n.as_bytes());
            len_field(&mut out, 5, t);
            int_field(&mut out, 20, 4);
        }
    }
    out
}

pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: &[Attr]) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        len_field(&mut n, 1, i.as_bytes());
    }
    for o in outputs {
        len_field(&mut n, 2, o.as_bytes());
    }
    len_field(&mut n, 3, name.as_bytes());
    len_field(&mut n, 4, op.as_bytes());
    for a in attrs {
        len_field(&mut n, 5, &attribute(a));
    }
    n
}

/// A float tensor value info; `None` dims are symbolic (`"N"`).
pub fn value_info(name: &str, dims: &[Option<i64>]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d {
            Some(v) => int_field(&mut dim, 1, *v),
            None => len_field(&mut dim, 2, b"N"),
        }
        len_field(&mut shape, 1, &dim);
    }
    let mut tt = Vec::new();
    int_field(&mut tt, 1, FLOAT);
    len_field(&mut tt, 2, &shape);
    let mut ty = Vec::new();
    len_field(&mut ty, 1, &tt);
    let mut v = Vec::new();
    len_field(&mut v, 1, name.as_bytes());
    len_field(&mut v, 2, &ty);
    v
}

/// A model: nodes, initializers, one input and one output.
pub fn model(nodes: &[Vec<u8>], inits: &[Vec<u8>], input: Vec<u8>, output: Vec<u8>) -> Vec<u8> {
    let mut g = Vec::new();
    for n in nodes {
        len_field(&mut g, 1, n);
    }
    len_field(&mut g, 2, b"test");
    for t in inits {
        len_field(&mut g, 5, t);
    }
    len_field(&mut g, 11, &input);
    len_field(&mut g, 12, &output);
    let mut m = Vec::new();
    int_field(&mut m, 1, 8);
    len_field(&mut m, 2, b"klrp-tests");
    len_field(&mut m, 7, &g);
    let mut opset = Vec::new();
    len_field(&mut opset, 1, b"");
    int_field(&mut opset, 2, 13);
    len_field(&mut m, 8, &opset);
    m
}

fn read_varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// The (field number, start, end) of every top-level field of a valid message.
pub fn top_level_fields(b: &[u8]) -> Vec<(u64, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let start = pos;
        let key = read_varint(b, &mut pos);
        match key & 7 {
            0 => {
                read_varint(b, &mut pos);
            }
            1 => pos += 8,
            2 => {
                let n = read_varint(b, &mut pos) as usize;
                pos += n;
            }
            5 => pos += 4,
            w => panic!("wire type {w}"),
        }
        out.push((key >> 3, start, pos));
    }
    out
}
