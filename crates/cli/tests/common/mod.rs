pub mod console;
pub mod desk;
