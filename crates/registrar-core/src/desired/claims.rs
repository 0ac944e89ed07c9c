//! The claim sort: every claim in (protocol, name key, account, mapping, IM name) order,
//! sorted on fixed-size key prefixes first so that a million claims sort without
//! comparing strings.

use crate::join::{self, Join};
use arcstr::ArcStr;

use super::desired_state::Claim;
use super::prepare::{Names, PendingClaim};

/// The claims of every account (`pending`, by account index), sorted by (protocol, name
/// key, account, mapping, IM name) and without duplicates. The claims' strings move into
/// the result (a shared empty string takes their place): a copy would touch the count of
/// each of millions of strings, twice.
pub(super) fn sorted_claims(
    names: &Names,
    mut pending: Vec<Vec<PendingClaim>>,
    join: &impl Join,
) -> Vec<Claim> {
    let count = pending.iter().map(Vec::len).sum();
    let mut order: Vec<(u64, u64, u32, u32)> = Vec::with_capacity(count);
    for (account, claims) in pending.iter().enumerate() {
        for (slot, claim) in claims.iter().enumerate() {
            let protocol_rank = names.protocol_ranks[claim.mapping];
            let (high, low) = sort_prefix(protocol_rank, &claim.name_key);
            order.push((high, low, account as u32, slot as u32));
        }
    }
    {
        // Protocol ranks order like the protocols' names, and accounts are in anchor order.
        let claim = |(_, _, account, slot): &(u64, u64, u32, u32)| {
            &pending[*account as usize][*slot as usize]
        };
        join::sort_unstable_by(join, &mut order, |a, b| {
            (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| {
                let (x, y) = (claim(a), claim(b));
                (&names.protocols[x.mapping], &x.name_key, a.2)
                    .cmp(&(&names.protocols[y.mapping], &y.name_key, b.2))
                    .then_with(|| {
                        (&names.mappings[x.mapping], &x.im_name)
                            .cmp(&(&names.mappings[y.mapping], &y.im_name))
                    })
            })
        });
    }
    let taken: ArcStr = ArcStr::from("");
    let mut sorted: Vec<Claim> = Vec::with_capacity(count);
    for &(_, _, account, slot) in &order {
        let pending = &mut pending[account as usize][slot as usize];
        let claim = Claim {
            protocol: names.protocols[pending.mapping].clone(),
            name_key: std::mem::replace(&mut pending.name_key, taken.clone()),
            account: account as usize,
            mapping: names.mappings[pending.mapping].clone(),
            im_name: std::mem::replace(&mut pending.im_name, taken.clone()),
        };
        if sorted.last() != Some(&claim) {
            sorted.push(claim);
        }
    }
    sorted
}

/// The sort prefix of `text` under `rank`: the rank, then the first 14 bytes of the text
/// (zero-padded), as two big-endian numbers. Two prefixes compare like (rank, text)
/// whenever they differ; equal ones need the whole texts.
pub(super) fn sort_prefix(rank: u16, text: &str) -> (u64, u64) {
    let mut bytes = [0u8; 16];
    bytes[..2].copy_from_slice(&rank.to_be_bytes());
    let take = text.len().min(14);
    bytes[2..2 + take].copy_from_slice(&text.as_bytes()[..take]);
    let (high, low) = bytes.split_at(8);
    (
        u64::from_be_bytes(high.try_into().expect("8 bytes")),
        u64::from_be_bytes(low.try_into().expect("8 bytes")),
    )
}
