use klrp::layers::*;
use klrp::semiring::*;
use klrp::*;
use ndarray::{Array1, Array2, Array4, ArrayD};
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn main() -> klrp::Result<()> {
    let mut rng = Rng(42);
    let cfg = [
        64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
    ];
    let mut layers: Vec<Box<dyn Layer>> = Vec::new();
    let mut c = 3;
    for &v in &cfg {
        if v == 0 {
            layers.push(Box::new(MaxPool2d::new((2, 2), (2, 2), (0, 0))?));
        } else {
            let std = (2.0 / (c as f32 * 9.0)).sqrt() * 1.7;
            let w = Array4::from_shape_fn((v, c, 3, 3), |_| rng.next() * std);
            let b = Array1::from_shape_fn(v, |_| rng.next() * 0.01);
            layers.push(Box::new(Conv2d::new(w, Some(b))?.with_padding((1, 1))?));
            layers.push(Box::new(ReLU));
            c = v;
        }
    }
    layers.push(Box::new(AdaptiveAvgPool2d::new((7, 7))?));
    layers.push(Box::new(Flatten));
    for (i, (a, b)) in [(25088usize, 4096usize), (4096, 4096), (4096, 1000)]
        .into_iter()
        .enumerate()
    {
        let std = (2.0 / a as f32).sqrt() * 1.7;
        let w = Array2::from_shape_fn((b, a), |_| rng.next() * std);
        layers.push(Box::new(Dense::new(w, Some(Array1::zeros(b)))?));
        if i < 2 {
            layers.push(Box::new(ReLU));
            layers.push(Box::new(Dropout));
        }
    }
    let net = Network::new([3, 224, 224], layers)?;
    let x = ArrayD::from_shape_fn(vec![1, 3, 224, 224], |_| rng.next());
    if std::env::var("PER_LAYER").is_ok() {
        per_layer(&net, &x);
    }
    let t = Instant::now();
    let trace = net.trace(&x)?;
    println!("forward: {:.3} s", t.elapsed().as_secs_f64());
    let target = [trace.predictions()[0]];
    if let Ok(which) = std::env::var("PER_LAYER_REL") {
        let theta = AbsThreshold::new(0.05)?;
        match which.as_str() {
            "real" => per_layer_rel(
                &net,
                &trace,
                trace.output_init(&target)?,
                &Composite::epsilon_gamma_box(-3.0, 3.0)?,
                &klrp::Identity,
            ),
            "boolean" => per_layer_rel(
                &net,
                &trace,
                one_hot::<Boolean>(trace.output().shape(), &target)?,
                &Composite::k_lrp(),
                &theta,
            ),
            "counting" => per_layer_rel(
                &net,
                &trace,
                one_hot::<FloatCounting>(trace.output().shape(), &target)?,
                &Composite::k_lrp(),
                &theta,
            ),
            _ => per_layer_rel(
                &net,
                &trace,
                one_hot::<Viterbi>(trace.output().shape(), &target)?,
                &Composite::viterbi(),
                &Clamp01,
            ),
        }
        return Ok(());
    }
    let which: Vec<String> = std::env::args().skip(1).collect();
    let want = |s: &str| which.is_empty() || which.iter().any(|w| w == s);
    if want("real") {
        let t = Instant::now();
        let init = trace.output_init(&target)?;
        let r = net.propagate(
            &trace,
            init,
            &Composite::epsilon_gamma_box(-3.0, 3.0)?,
            &PerLayer::new(klrp::Identity),
            false,
        )?;
        println!(
            "real egb relevance: {:.3} s (sum {:.4})",
            t.elapsed().as_secs_f64(),
            r.input().iter().map(|v| v.0).sum::<f32>()
        );
    }
    let th: f32 = std::env::var("THETA")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.05);
    let theta = PerLayer::new(AbsThreshold::new(th)?);
    if want("boolean") {
        let t = Instant::now();
        let init = one_hot::<Boolean>(trace.output().shape(), &target)?;
        let r = net.propagate(&trace, init, &Composite::k_lrp(), &theta, false)?;
        println!(
            "boolean relevance: {:.3} s ({} on)",
            t.elapsed().as_secs_f64(),
            r.input().iter().filter(|v| v.0).count()
        );
    }
    if want("counting") {
        let t = Instant::now();
        let init = one_hot::<FloatCounting>(trace.output().shape(), &target)?;
        let r = net.propagate(&trace, init, &Composite::k_lrp(), &theta, false)?;
        println!(
            "counting relevance: {:.3} s (max {:e})",
            t.elapsed().as_secs_f64(),
            r.input().iter().fold(0.0f64, |m, v| m.max(v.0))
        );
    }
    if want("viterbi") {
        let t = Instant::now();
        let init = one_hot::<Viterbi>(trace.output().shape(), &target)?;
        let r = net.propagate(
            &trace,
            init,
            &Composite::viterbi(),
            &PerLayer::new(Clamp01),
            false,
        )?;
        println!(
            "viterbi relevance: {:.3} s (max {:e})",
            t.elapsed().as_secs_f64(),
            r.input().iter().fold(0.0f64, |m, v| m.max(v.0))
        );
    }
    Ok(())
}

#[allow(dead_code)]
pub fn per_layer(net: &Network, x: &ArrayD<f32>) {
    let mut a = x.clone();
    for (i, l) in net.layers().iter().enumerate() {
        let t = Instant::now();
        a = l.forward(&a).unwrap();
        println!(
            "  layer {i:2} {:<45} {:.1} ms",
            l.name(),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}

#[allow(dead_code)]
pub fn per_layer_rel<K: Semiring, T: Conversion<K>>(
    net: &Network,
    trace: &Trace,
    init: ArrayD<K>,
    comp: &Composite,
    theta: &T,
) {
    let rules = comp.assign(net.layers());
    let mut r = init;
    for (i, l) in net.layers().iter().enumerate().rev() {
        let t = Instant::now();
        let sh = l
            .shares(
                trace.activation(i).unwrap(),
                trace.activation(i + 1).unwrap(),
                &rules[i],
            )
            .unwrap();
        let t1 = t.elapsed().as_secs_f64() * 1e3;
        r = klrp::kernels::propagate(&sh, theta, &r, trace.activation(i).unwrap().shape()).unwrap();
        let t2 = t.elapsed().as_secs_f64() * 1e3;
        if t2 > 2.0 {
            println!(
                "  layer {i:2} {:<45} shares {t1:.1} ms, total {t2:.1} ms",
                l.name()
            );
        }
    }
}
