//! The eight tasks, one module each.

mod contact;
mod corners;
mod detect;
mod frame;
mod grow;
mod half_fill;
mod replace_color;
mod translate;

pub use contact::Contact;
pub use corners::Corners;
pub use corners::mark_cells as corner_mark_cells;
pub use detect::Detect;
pub use frame::Frame;
pub use grow::Grow;
pub use grow::MIN_LARGE_SIDE;
pub use half_fill::HalfFill;
pub use replace_color::ReplaceColor;
pub use translate::DIRECTIONS;
pub use translate::Translate;
