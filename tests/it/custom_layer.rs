//! The `Layer` trait is open: a layer defined outside the crate, describing its shares
//! explicitly, propagates in every semiring like the built-ins.

use klrp::composite::Composite;
use klrp::layers::{Dense, Layer, LayerKind, ReLU, Shares, Tensor};
use klrp::rules::Rule;
use klrp::semiring::{Boolean, Counting, Real};
use klrp::{Identity, Network, PerLayer, Threshold};
use ndarray::{ArrayD, IxDyn, array};

/// Sums neighbouring pairs: `y_k = x_{2k} + x_{2k+1}`; shares are proportional,
/// `d_jk = x_j / y_k` (0 where `y_k = 0`).
#[derive(Debug)]
struct PairSum;

impl Layer for PairSum {
    fn name(&self) -> String {
        "PairSum".into()
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Other
    }
    fn output_shape(&self, input: &[usize]) -> klrp::Result<Vec<usize>> {
        match input {
            [n] if n % 2 == 0 => Ok(vec![n / 2]),
            _ => Err(klrp::Error::shape("PairSum input", &[2], input)),
        }
    }
    fn forward(&self, x: &Tensor) -> klrp::Result<Tensor> {
        let (n, f) = (x.shape()[0], x.shape()[1]);
        Ok(ArrayD::from_shape_fn(IxDyn(&[n, f / 2]), |i| {
            x[[i[0], 2 * i[1]]] + x[[i[0], 2 * i[1] + 1]]
        }))
    }
    fn shares(&self, x: &Tensor, y: &Tensor, _: &Rule) -> klrp::Result<Shares<'_>> {
        let per_sample = (0..x.shape()[0])
            .map(|s| {
                (0..x.shape()[1])
                    .map(|j| {
                        let k = j / 2;
                        let yk = y[[s, k]];
                        (j, k, if yk == 0.0 { 0.0 } else { x[[s, j]] / yk })
                    })
                    .collect()
            })
            .collect();
        Ok(Shares::Explicit(per_sample))
    }
}

fn net() -> Network {
    Network::new(
        [2],
        vec![
            Box::new(
                Dense::new(
                    array![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]],
                    None,
                )
                .unwrap(),
            ),
            Box::new(ReLU),
            Box::new(PairSum),
        ],
    )
    .unwrap()
}

#[test]
fn a_user_layer_propagates_in_real_boolean_and_counting() {
    let net = net();
    // a = [1, 2]; dense → [1, 2, 3, 0]; PairSum → [3, 3].
    let x = array![[1.0_f32, 2.0]].into_dyn();
    let real = net
        .explain::<Real<f32>, _>(&x, &[0], &Composite::k_lrp(), &PerLayer::new(Identity))
        .unwrap();
    // PairSum: R = [1/3, 2/3, 0, 0] on the hidden units; the identity-like dense rows 0 and 1
    // pass them to inputs 0 and 1 with share 1 each: R_in = [1/3, 2/3], conserving 1.
    let r: Vec<f32> = real.input().iter().map(|v| v.0).collect();
    assert!(
        (r[0] - 1.0 / 3.0).abs() < 1e-6 && (r[1] - 2.0 / 3.0).abs() < 1e-6,
        "{r:?}"
    );

    // Threshold 0.5: only the share 2/3 of hidden unit 1 passes; hidden unit 1 is fed by input 1
    // alone (share 1), so only input 1 is relevant, through one path.
    let theta = PerLayer::new(Threshold::new(0.5).unwrap());
    let b = net
        .explain::<Boolean, _>(&x, &[0], &Composite::k_lrp(), &theta)
        .unwrap();
    assert_eq!(
        b.input().iter().copied().collect::<Vec<_>>(),
        [Boolean(false), Boolean(true)]
    );
    let c = net
        .explain::<Counting, _>(&x, &[0], &Composite::k_lrp(), &theta)
        .unwrap();
    assert_eq!(
        c.input().iter().copied().collect::<Vec<_>>(),
        [Counting(0), Counting(1)]
    );

    // Class 1 = hidden units 2 and 3 (3 and 0): unit 2 takes share 1; it is fed by both inputs
    // (a·w / z = 1/3 and 2/3), so with θ = 0.3 both inputs count one path each.
    let theta = PerLayer::new(Threshold::new(0.3).unwrap());
    let c = net
        .explain::<Counting, _>(&x, &[1], &Composite::k_lrp(), &theta)
        .unwrap();
    assert_eq!(
        c.input().iter().copied().collect::<Vec<_>>(),
        [Counting(1), Counting(1)]
    );
}

#[test]
fn a_user_layer_is_shape_checked_when_the_network_is_built() {
    let err = Network::new([3], vec![Box::new(PairSum)]).unwrap_err();
    assert!(matches!(err, klrp::Error::Layer { index: 0, .. }), "{err}");
}
