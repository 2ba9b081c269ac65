print("glm5")
