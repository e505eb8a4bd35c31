"""From label maps to named vertebrae and their SINS measurements.

labels   -> `SpineLabels`: anatomy, vertebra instances and lesions on the canonical grid, from our
            own maps or from VerSe / TotalSegmentator ids (whole vertebrae are split geometrically)
vertebrae -> `VertebraMasks` per instance, ordered cranial to caudal, with their anchors
naming   -> level names counted from anatomical anchors (sacrum, ribs, C1) or an override
frames   -> each vertebra's own frame and its body geometry (heights, walls, endplates)
measure  -> the per-level `Measurements` of DESIGN.md §2
"""
