pub mod onem2m;
