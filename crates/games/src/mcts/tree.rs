//! The search tree: nodes in one vector, children of a node contiguous, the
//! root at index 0. Statistics of a node are kept from the point of view of
//! the player who made the move into it (its `mover`), so a parent picks
//! the child with the best value for the parent's side to move.

use crate::game::{Outcome, Player};

/// What is known for certain of a position in the tree, from the point of
/// view of the player who moved into it (MCTS-Solver: a finished game, or a
/// position every line of which is decided within the tree).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Proof {
    /// Not decided yet.
    Unknown,
    /// The mover wins with best play, in `plies` more plies at most.
    Win {
        /// Plies to the end of the game with best play (0: the game is over).
        plies: u16,
    },
    /// The mover loses with best play.
    Loss {
        /// Plies to the end of the game with best play.
        plies: u16,
    },
    /// A draw with best play.
    Draw {
        /// Plies to the end of the game with best play.
        plies: u16,
    },
}

impl Proof {
    /// The proof of a finished game for `mover`.
    pub(crate) fn of_outcome(outcome: Outcome, mover: Player) -> Proof {
        match outcome {
            Outcome::Win(winner) if winner == mover => Proof::Win { plies: 0 },
            Outcome::Win(_) => Proof::Loss { plies: 0 },
            Outcome::Draw => Proof::Draw { plies: 0 },
        }
    }

    /// The exact value for the mover, if proven.
    pub fn value(self) -> Option<f32> {
        match self {
            Proof::Unknown => None,
            Proof::Win { .. } => Some(1.0),
            Proof::Loss { .. } => Some(-1.0),
            Proof::Draw { .. } => Some(0.0),
        }
    }

    /// The same fact seen by the other player.
    #[must_use]
    pub fn flipped(self) -> Proof {
        match self {
            Proof::Win { plies } => Proof::Loss { plies },
            Proof::Loss { plies } => Proof::Win { plies },
            other => other,
        }
    }

    pub(crate) fn is_win(self) -> bool {
        matches!(self, Proof::Win { .. })
    }

    pub(crate) fn is_loss(self) -> bool {
        matches!(self, Proof::Loss { .. })
    }

    pub(crate) fn plies(self) -> u16 {
        match self {
            Proof::Unknown => u16::MAX,
            Proof::Win { plies } | Proof::Loss { plies } | Proof::Draw { plies } => plies,
        }
    }
}

/// Where a node stands in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeState {
    /// Not yet reached by a simulation.
    Leaf,
    /// Sent to the evaluator; its result is awaited.
    Pending,
    /// Evaluated, with children.
    Expanded,
    /// A finished game.
    Terminal,
}

/// One position of the tree.
#[derive(Clone, Debug)]
pub(crate) struct Node<M> {
    /// The move that led here (`None` at a fresh root).
    pub mv: Option<M>,
    /// The player who made that move; statistics are from their side.
    pub mover: Player,
    /// The prior of the move (noise mixed in at the root).
    pub prior: f32,
    /// Completed simulations through this node.
    pub visits: u32,
    /// Sum of the values, for `mover`, of those simulations.
    pub value_sum: f64,
    /// Simulations through this node still waiting for their evaluation.
    pub virtual_visits: u32,
    /// Index of the first child (children are contiguous).
    pub first_child: u32,
    /// Number of children.
    pub child_count: u32,
    pub state: NodeState,
    pub proof: Proof,
}

impl<M> Node<M> {
    pub fn new(mv: Option<M>, mover: Player, prior: f32) -> Node<M> {
        Node {
            mv,
            mover,
            prior,
            visits: 0,
            value_sum: 0.0,
            virtual_visits: 0,
            first_child: 0,
            child_count: 0,
            state: NodeState::Leaf,
            proof: Proof::Unknown,
        }
    }

    pub fn children(&self) -> std::ops::Range<usize> {
        let first = self.first_child as usize;
        first..first + self.child_count as usize
    }

    /// Mean value for the mover, `None` before the first visit.
    pub fn mean_value(&self) -> Option<f64> {
        (self.visits > 0).then(|| self.value_sum / f64::from(self.visits))
    }
}

/// The tree of one search.
#[derive(Clone, Debug)]
pub(crate) struct Tree<M> {
    pub nodes: Vec<Node<M>>,
}

impl<M: Copy> Tree<M> {
    /// A tree holding only a fresh root whose side to move is `to_move`.
    pub fn new(to_move: Player) -> Tree<M> {
        Tree {
            nodes: vec![Node::new(None, to_move.opponent(), 1.0)],
        }
    }

    pub fn root(&self) -> &Node<M> {
        &self.nodes[0]
    }

    /// Adds one child per `(move, prior)` to `parent`, all moved by `mover`.
    pub fn expand(
        &mut self,
        parent: usize,
        mover: Player,
        children: impl Iterator<Item = (M, f32)>,
    ) {
        let first = self.nodes.len();
        self.nodes
            .extend(children.map(|(mv, prior)| Node::new(Some(mv), mover, prior)));
        let count = self.nodes.len() - first;
        let node = &mut self.nodes[parent];
        node.first_child = u32::try_from(first).expect("the tree has fewer than 2^32 nodes");
        node.child_count = u32::try_from(count).expect("a position has fewer than 2^32 moves");
        node.state = NodeState::Expanded;
    }

    /// Adds `value` (for `value_player`) to every node of `path` as one
    /// completed simulation, removing the virtual visit selection put there
    /// when `virtual_visit` is set.
    pub fn backup(
        &mut self,
        path: &[usize],
        value: f32,
        value_player: Player,
        virtual_visit: bool,
    ) {
        for &index in path {
            let node = &mut self.nodes[index];
            node.visits += 1;
            if virtual_visit {
                node.virtual_visits -= 1;
            }
            let signed = if node.mover == value_player {
                value
            } else {
                -value
            };
            node.value_sum += f64::from(signed);
        }
    }

    /// Removes the virtual visits of an abandoned selection.
    pub fn revert_virtual(&mut self, path: &[usize]) {
        for &index in path {
            self.nodes[index].virtual_visits -= 1;
        }
    }

    /// Recomputes the proofs along `path` from its end upwards after the
    /// last node's proof changed; stops where nothing changes.
    pub fn propagate_proof(&mut self, path: &[usize]) {
        for &index in path.iter().rev().skip(1) {
            let proof = self.proof_from_children(index);
            if proof == self.nodes[index].proof {
                return;
            }
            self.nodes[index].proof = proof;
        }
    }

    /// The proof of an expanded node from its children's proofs.
    fn proof_from_children(&self, index: usize) -> Proof {
        let node = &self.nodes[index];
        let children = node.children();
        let Some(first) = children.clone().next() else {
            return node.proof;
        };
        // The children's mover is the side to move at `index`.
        let side = self.nodes[first].mover;
        let mut fastest_win: Option<u16> = None;
        let mut slowest_loss: Option<u16> = None;
        let mut fastest_draw: Option<u16> = None;
        let mut all_proven = true;
        for child in &self.nodes[children] {
            match child.proof {
                Proof::Win { plies } => {
                    fastest_win = Some(fastest_win.map_or(plies, |best| best.min(plies)))
                }
                Proof::Loss { plies } => {
                    slowest_loss = Some(slowest_loss.map_or(plies, |worst| worst.max(plies)))
                }
                Proof::Draw { plies } => {
                    fastest_draw = Some(fastest_draw.map_or(plies, |best| best.min(plies)))
                }
                Proof::Unknown => all_proven = false,
            }
        }
        let for_side = if let Some(plies) = fastest_win {
            Proof::Win {
                plies: plies.saturating_add(1),
            }
        } else if !all_proven {
            return Proof::Unknown;
        } else if let Some(plies) = fastest_draw {
            Proof::Draw {
                plies: plies.saturating_add(1),
            }
        } else {
            Proof::Loss {
                plies: slowest_loss
                    .expect("an expanded node has children")
                    .saturating_add(1),
            }
        };
        if node.mover == side {
            for_side
        } else {
            for_side.flipped()
        }
    }

    /// Makes the node at `new_root` the root, keeping its subtree and
    /// dropping the rest.
    pub fn reroot(&mut self, new_root: usize) {
        let mut nodes = Vec::with_capacity(self.nodes.len());
        let mut old_index = vec![new_root];
        nodes.push(self.nodes[new_root].clone());
        let mut next = 0;
        while next < nodes.len() {
            let children = self.nodes[old_index[next]].children();
            if !children.is_empty() {
                nodes[next].first_child =
                    u32::try_from(nodes.len()).expect("the tree has fewer than 2^32 nodes");
                for child in children {
                    old_index.push(child);
                    nodes.push(self.nodes[child].clone());
                }
            }
            next += 1;
        }
        self.nodes = nodes;
    }
}
