"""Flow geometry shared by the data layer and video preparation, below both: the HSV flow encoding
(`encoding`), the similarity registration of a face (`registration`) and the face mask (`mask`).

facedyn.videos may import facedyn.data (layout, expressions); facedyn.data never imports facedyn.videos,
and this package imports neither.
"""
