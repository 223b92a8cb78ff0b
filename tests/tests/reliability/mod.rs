mod crash;
mod exactly_once;
mod faults;
mod hostile;
