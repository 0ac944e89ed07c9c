//! Value templates (`{mail|lower|local_part}`) rendered over directory entries.
