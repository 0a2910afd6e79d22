"""Flow geometry shared by the data layer and video preparation: the face mask of a flow image."""
