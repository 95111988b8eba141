//! Vectors made with libtorrent 2.0.8 (python3-libtorrent): the files of its test folder,
//! bytes `(j * 31 + seed * 7) % 251`, piece length 64 KiB.
use super::*;

fn data(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|j| ((j * 31 + seed * 7) % 251) as u8)
        .collect()
}

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

const PL: u32 = 65536;

#[test]
fn roots_and_piece_layers_match_libtorrent() {
    let cases = [
        (
            "a_small",
            1000,
            1,
            "008549d94fa71e7a0a483d84380d05a923a4b18e79ba1f8a8ddac923956d32ef",
        ),
        (
            "b_mid",
            40000,
            2,
            "dd67b7a286410a86729c16421be8193087ba88f42e1f2b3c5a684f8d2c2f8329",
        ),
        (
            "c_big",
            200000,
            3,
            "6b5e20aeccd272657c12564c2b6755fc029248e9943179e4460019a01b54460b",
        ),
        (
            "e_exact",
            65536,
            5,
            "a36adae0a2dffc529b21f91eda61ead25226186b412e2b26b94e6fde95865018",
        ),
        (
            "f_two",
            131077,
            6,
            "85db6f11d750c1525ab22755acb1742489e22a86f0c121c87fdc06dafb99a2ea",
        ),
        (
            "one",
            100000,
            7,
            "fe59ca528d37886d898f4ef5ee1a1e25a9ddef1f468b09d800815e2a4f4f2980",
        ),
    ];
    for (name, len, seed, want) in cases {
        let d = data(len, seed);
        let (r, layer) = file_tree(&leaves(&d), len as u64, PL);
        assert_eq!(r, h(want), "{name}");
        assert_eq!(layer.is_some(), len > PL as usize, "{name}");
        // Each piece's hash, from its own blocks, is what verification compares.
        let layer = layer.unwrap_or_else(|| vec![r]);
        for (k, chunk) in d.chunks(PL as usize).enumerate() {
            assert_eq!(
                piece_hash(&leaves(chunk), len as u64, PL),
                layer[k],
                "{name} piece {k}"
            );
        }
    }
    let (_, layer) = file_tree(&leaves(&data(200000, 3)), 200000, PL);
    assert_eq!(
        layer.unwrap()[0],
        h("9b2588424b1a7ac9535a3b9171dc86339d7e50b3b34d0bb17c8b9612a6a6c810")
    );
}

#[test]
fn pad_hashes_are_libtorrents() {
    assert_eq!(pad_hash(0), [0; 32]);
    assert_eq!(
        pad_hash(2),
        h("db56114e00fdd4c1f85c892bf35ac9a89289aaecb1ebd0a96cde606a748b5d71")
    );
    assert_eq!(
        pad_hash(5),
        h("9efde052aa15429fae05bad4d0b1d7c64da64d03d7a1854a588c2cb8430c0d30")
    );
}

#[test]
fn proofs_are_built_and_checked_as_libtorrent_sends_them() {
    // c_big: 13 blocks, a tree of 16 leaves. Blocks 4..8 with 3 proof layers come with two
    // uncles: piece 0's hash, then H(piece 2 || piece 3) (captured from libtorrent).
    let d = data(200000, 3);
    let leaves = leaves(&d);
    let (root_hash, layer) = file_tree(&leaves, 200000, PL);
    let layer = layer.unwrap();
    let full = layer_of(&leaves, 16, 0);
    let u = uncles(&full, [0; 32], 4, 4, 3);
    assert_eq!(u.len(), 2);
    assert_eq!(u[0], layer[0]);
    assert_eq!(u[1], parent(&layer[2], &layer[3]));
    let proof = Proof {
        base_hashes: &full[4..8],
        index: 4,
        uncles: &u,
    };
    assert_eq!(proof.root(), Some(root_hash));
    // The piece layer itself (base 2, four hashes, one proof layer): no uncle needed.
    let pieces = layer_of(&leaves, 16, 2);
    assert_eq!(&pieces[..4], &layer[..]);
    assert!(uncles(&pieces, pad_hash(2), 0, 4, 1).is_empty());
    // f_two: three pieces, its layer padded with the pad hash of a piece's subtree.
    let (f_root, f_layer) = file_tree(&leaves_of(131077, 6), 131077, PL);
    let mut padded = f_layer.unwrap();
    padded.push(pad_hash(2));
    assert_eq!(
        Proof {
            base_hashes: &padded,
            index: 0,
            uncles: &[]
        }
        .root(),
        Some(f_root)
    );
    // A wrong hash, a wrong shape: no root, or another one.
    let mut bad = full[4..8].to_vec();
    bad[1][0] ^= 1;
    assert_ne!(
        Proof {
            base_hashes: &bad,
            index: 4,
            uncles: &u
        }
        .root(),
        Some(root_hash)
    );
    assert!(Proof {
        base_hashes: &full[4..7],
        index: 4,
        uncles: &u
    }
    .root()
    .is_none());
    assert!(Proof {
        base_hashes: &full[4..8],
        index: 6,
        uncles: &u
    }
    .root()
    .is_none());
}

fn leaves_of(len: usize, seed: usize) -> Vec<Hash> {
    leaves(&data(len, seed))
}
