//! Zero-copy views and in-place emitters for the protocol headers mpgw handles.
