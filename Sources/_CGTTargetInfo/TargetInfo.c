/* Header-only: see include/CGTTargetInfo.h. */
