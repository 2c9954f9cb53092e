//! geomem-rem
