// Empty: SwiftPM needs one source file to expose include/glm5.h as the CGLM5 module.
