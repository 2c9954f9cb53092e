//! geomem-spectral
